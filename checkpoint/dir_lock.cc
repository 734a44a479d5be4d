#include "checkpoint/dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <system_error>
#include <vector>

#include "checkpoint/file_system.h"
#include "checkpoint/file_util.h"
#include "checkpoint/layout.h"
#include "common/error.h"
#include "common/log.h"
#include "common/net.h"

namespace conveyor::checkpoint {

namespace fs = std::filesystem;

namespace {

constexpr const char* kDirHint =
    "pass --ckpt-dir a directory this job can write (it is created if missing)";

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

std::string read_all(int fd) {
  std::string content;
  char buffer[512];
  off_t offset = 0;
  while (content.size() < 4096) {
    const ssize_t n = pread(fd, buffer, sizeof(buffer), offset);
    if (n <= 0) break;
    content.append(buffer, static_cast<size_t>(n));
    offset += n;
  }
  return content;
}

void write_record(int fd, const fs::path& path) {
  const std::string record =
      nlohmann::json{
          {"host", host_name()}, {"pid", static_cast<int64_t>(getpid())}, {"started", utc_now()}}
          .dump() +
      "\n";
  if (ftruncate(fd, 0) != 0 ||
      pwrite(fd, record.data(), record.size(), 0) != static_cast<ssize_t>(record.size())) {
    const std::string reason = std::strerror(errno);
    throw Error(ErrorKind::kUsage,
                fmt::format("cannot write the checkpoint lock file {}: {}", path.string(), reason),
                kDirHint);
  }
}

}  // namespace

std::string describe_lock_holder(const std::string& content) {
  const auto j = nlohmann::json::parse(content, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("host") && j.contains("pid") && j.contains("started")) {
    auto text = [](const nlohmann::json& v) {
      return printable(v.is_string() ? v.get<std::string>() : v.dump());
    };
    return fmt::format("host {}, pid {}, started {}", text(j["host"]), text(j["pid"]),
                       text(j["started"]));
  }
  if (content.empty()) return "holder not recorded yet";
  return fmt::format("lock file says \"{}\"", printable(content));
}

DirLock DirLock::acquire(const fs::path& root) {
  std::error_code ec;
  const auto status = fs::status(root, ec);
  if (fs::exists(status) && !fs::is_directory(status)) {
    throw Error(ErrorKind::kUsage,
                fmt::format("--ckpt-dir {} exists but is not a directory", root.string()),
                kDirHint);
  }
  // The folders created here must be durable themselves, or a power cut could take every
  // checkpoint committed in them away: each new one is fsynced into its parent, outermost first.
  std::vector<fs::path> created;
  for (fs::path p = root; !p.empty() && !fs::exists(fs::symlink_status(p, ec));
       p = p.parent_path()) {
    created.push_back(p);
  }
  FileSystem& files = file_system();
  files.create_directories(root, ec);
  if (!fs::is_directory(root)) {
    throw Error(ErrorKind::kUsage,
                fmt::format("cannot create checkpoint directory {}: {}", root.string(),
                            ec ? ec.message() : "not a directory"),
                kDirHint);
  }
  for (auto it = created.rbegin(); it != created.rend(); ++it) {
    const fs::path parent = it->parent_path();
    files.fsync_dir(parent.empty() ? fs::path(".") : parent);
  }
  // access() also answers for a read-only file system when the caller is root (whom the
  // permission bits do not stop); an existing lock file could be opened even then.
  if (access(root.c_str(), W_OK | X_OK) != 0) {
    throw Error(ErrorKind::kUsage,
                fmt::format("checkpoint directory {} is not writable: {}", root.string(),
                            std::strerror(errno)),
                kDirHint);
  }
  const fs::path path = root / kLockFile;
  // Never through a link planted at .lock: its target would get the record and be emptied
  // when this job ends. A FIFO there is refused, not blocked on.
  const int fd = open_output_file(path, WriteMode::kLock, "checkpoint lock file").release();
  DirLock lock(fd);  // closes fd on every error path below
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const std::string holder = describe_lock_holder(read_all(fd));
    lock.fd_ = -1;
    ::close(fd);  // not release(): the file belongs to its holder
    if (err == EWOULDBLOCK) {
      throw Error(ErrorKind::kUsage,
                  fmt::format("checkpoint directory {} is in use by another job ({}; lock file {})",
                              root.string(), holder, path.string()),
                  "wait for that job to end or stop it, or give this job another --ckpt-dir");
    }
    throw Error(ErrorKind::kUsage,
                fmt::format("cannot lock {}: {}", path.string(), std::strerror(err)),
                "the file system must support flock(2); use a local or NFS directory");
  }
  const std::string previous = read_all(fd);
  if (!previous.empty()) {
    CONVEYOR_LOG_WARN(
        "taking over the lock of checkpoint directory {}: it was held by {}, which no longer "
        "runs (it did not end cleanly)",
        root.string(), describe_lock_holder(previous));
  }
  write_record(fd, path);
  return lock;
}

DirLock::DirLock(DirLock&& other) noexcept : fd_(other.fd_) {
  other.fd_ = -1;
}

DirLock& DirLock::operator=(DirLock&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

DirLock::~DirLock() {
  release();
}

void DirLock::release() {
  if (fd_ < 0) return;
  // An empty file tells the next job that this one ended cleanly; failing to empty it only
  // costs that job a warning.
  if (ftruncate(fd_, 0) != 0) {
    CONVEYOR_LOG_WARN("cannot empty the checkpoint lock file: {}", std::strerror(errno));
  }
  ::close(fd_);
  fd_ = -1;
}

}  // namespace conveyor::checkpoint
