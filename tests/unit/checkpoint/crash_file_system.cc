#include "tests/unit/checkpoint/crash_file_system.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "common/error.h"

namespace conveyor::checkpoint::testing {

namespace fs = std::filesystem;

// A durable state below one directory, built from the model before anything is touched.
struct CrashFileSystem::Tree {
  std::map<std::string, Tree> dirs;
  std::map<std::string, std::string> files;
};

namespace {

// Writes `tree` into the (empty) directory `dir`.
template <typename Tree>
void materialise(const Tree& tree, const fs::path& dir) {
  for (const auto& [name, content] : tree.files) {
    std::ofstream out(dir / name, std::ios::binary);
    out << content;
    CONVEYOR_CHECK(out.good(), "crash_file_system: cannot restore {}", (dir / name).string());
  }
  for (const auto& [name, sub] : tree.dirs) {
    fs::create_directory(dir / name);
    materialise(sub, dir / name);
  }
}

}  // namespace

CrashFileSystem::CrashFileSystem(fs::path root) : root_(std::move(root)) {
  root_inode_ = pin(root_);
  record_all(root_);
}

void CrashFileSystem::crash_after(int k) {
  std::lock_guard lock(mutex_);
  crash_after_ = static_cast<int>(calls_.size()) + k;
  if (k == 0) crash_after_ = 0;
}

bool CrashFileSystem::crashed() const {
  std::lock_guard lock(mutex_);
  return crashed_;
}

std::vector<std::string> CrashFileSystem::calls() const {
  std::lock_guard lock(mutex_);
  return calls_;
}

std::string CrashFileSystem::shown(const fs::path& path) const {
  return path.lexically_relative(root_).string();
}

void CrashFileSystem::begin_call(const std::string& what) {
  if (crashed_) throw Crashed{};
  calls_.push_back(what);
}

void CrashFileSystem::end_call() {
  if (static_cast<int>(calls_.size()) == crash_after_) {
    crashed_ = true;
    throw Crashed{};
  }
}

ino_t CrashFileSystem::pin(const fs::path& path, bool* is_dir) {
  struct stat st {};
  CONVEYOR_CHECK(::lstat(path.c_str(), &st) == 0, "crash_file_system: cannot stat {}: {}",
                 path.string(), std::strerror(errno));
  CONVEYOR_CHECK(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode),
                 "crash_file_system: {} is neither a file nor a directory", path.string());
  if (is_dir != nullptr) *is_dir = S_ISDIR(st.st_mode);
  if (pinned_.count(st.st_ino) == 0) {
    UniqueFd fd(::open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    CONVEYOR_CHECK(fd.get() >= 0, "crash_file_system: cannot open {}: {}", path.string(),
                   std::strerror(errno));
    pinned_.emplace(st.st_ino, std::move(fd));
  }
  return st.st_ino;
}

void CrashFileSystem::record_file(const fs::path& path) {
  bool is_dir = false;
  const ino_t inode = pin(path, &is_dir);
  CONVEYOR_CHECK(!is_dir, "crash_file_system: fsync_file of the directory {}", path.string());
  durable_content_[inode] = read_input_file(path);
}

void CrashFileSystem::record_dir(const fs::path& dir) {
  bool is_dir = false;
  const ino_t inode = pin(dir, &is_dir);
  CONVEYOR_CHECK(is_dir, "crash_file_system: fsync_dir of the file {}", dir.string());
  Entries entries;
  for (const auto& entry : fs::directory_iterator(dir)) {
    Entry e;
    e.inode = pin(entry.path(), &e.is_dir);
    entries[entry.path().filename().string()] = e;
  }
  durable_entries_[inode] = std::move(entries);
}

void CrashFileSystem::record_all(const fs::path& dir) {
  record_dir(dir);
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (fs::is_directory(entry.symlink_status())) {
      record_all(entry.path());
    } else {
      record_file(entry.path());
    }
  }
}

void CrashFileSystem::build(ino_t dir, Tree& out, int depth) const {
  // A directory durable in two parents (a rename between folders half synced) is restored in
  // both; a cycle cannot be restored at all.
  CONVEYOR_CHECK(depth < 64, "crash_file_system: the durable tree is cyclic");
  auto entries = durable_entries_.find(dir);
  if (entries == durable_entries_.end()) return;  // created, never fsynced: empty
  for (const auto& [name, e] : entries->second) {
    if (e.is_dir) {
      build(e.inode, out.dirs[name], depth + 1);
    } else {
      auto content = durable_content_.find(e.inode);
      out.files[name] = content == durable_content_.end() ? std::string() : content->second;
    }
  }
}

void CrashFileSystem::crash() {
  std::lock_guard lock(mutex_);
  Tree durable;
  build(root_inode_, durable, 0);
  for (const auto& entry : fs::directory_iterator(root_)) fs::remove_all(entry.path());
  materialise(durable, root_);
  durable_content_.clear();
  durable_entries_.clear();
  pinned_.clear();
  root_inode_ = pin(root_);
  record_all(root_);
  crash_after_ = 0;
  crashed_ = false;
  calls_.clear();
}

// Each call: checked and counted, done for real, its durable effect recorded, then maybe the
// crash. The real fsyncs are left out: the model is what this file system calls durable.

void CrashFileSystem::create_directories(const fs::path& dir, std::error_code& ec) {
  std::lock_guard lock(mutex_);
  begin_call("create_directories " + shown(dir));
  posix_file_system().create_directories(dir, ec);
  end_call();
}

void CrashFileSystem::write_new_file(const fs::path& path, std::string_view bytes) {
  std::lock_guard lock(mutex_);
  begin_call("write_new_file " + shown(path));
  posix_file_system().write_new_file(path, bytes);
  end_call();
}

void CrashFileSystem::fsync_file(const fs::path& path) {
  std::lock_guard lock(mutex_);
  begin_call("fsync_file " + shown(path));
  record_file(path);
  end_call();
}

void CrashFileSystem::fsync_dir(const fs::path& dir) {
  std::lock_guard lock(mutex_);
  begin_call("fsync_dir " + shown(dir));
  record_dir(dir);
  end_call();
}

void CrashFileSystem::rename(const fs::path& from, const fs::path& to) {
  std::lock_guard lock(mutex_);
  begin_call("rename " + shown(from) + " -> " + shown(to));
  posix_file_system().rename(from, to);
  end_call();
}

void CrashFileSystem::remove(const fs::path& path, std::error_code& ec) {
  std::lock_guard lock(mutex_);
  begin_call("remove " + shown(path));
  posix_file_system().remove(path, ec);
  end_call();
}

}  // namespace conveyor::checkpoint::testing
