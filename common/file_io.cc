#include "common/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/error.h"
#include "common/printable.h"

namespace conveyor {

namespace fs = std::filesystem;

namespace {

// A path in a message: escaped, since a file name may hold terminal codes or newlines.
std::string shown(const fs::path& path) {
  return printable(path.string(), 512);
}

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a regular file";
}

int open_flags(WriteMode mode) {
  switch (mode) {
    case WriteMode::kTruncate:
      return O_WRONLY | O_CREAT;  // truncated once known regular
    case WriteMode::kAppend:
      return O_WRONLY | O_CREAT | O_APPEND;
    case WriteMode::kExclusive:
      return O_WRONLY | O_CREAT | O_EXCL;
    case WriteMode::kLock:
      return O_RDWR | O_CREAT;
  }
  return O_WRONLY;
}

[[noreturn]] void refuse_output(const fs::path& path, std::string_view what, const char* kind) {
  throw Error(ErrorKind::kUsage,
              fmt::format("{} {} is {}; conveyor writes only regular files and follows no link "
                          "where it writes, and left it as it is",
                          what, shown(path), kind),
              "remove it, or give the path of a regular file");
}

void set_blocking(int fd) {
  const int flags = fcntl(fd, F_GETFL);
  if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
}

// A stream output given as a link (/dev/stdout -> /proc/self/fd/1 -> pipe:[...]): opened
// through the link without creating or truncating anything, then kept only when what it
// names is not a regular file.
UniqueFd open_stream_through_link(const fs::path& path, std::string_view what) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  struct stat st {};
  if (fd.get() < 0 || fstat(fd.get(), &st) != 0 || S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
    refuse_output(path, what, "a symbolic link");
  set_blocking(fd.get());
  return fd;
}

}  // namespace

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

UniqueFd open_output_file(const fs::path& path, WriteMode mode, std::string_view what,
                          OutputTarget target) {
  CONVEYOR_REQUIRE(!path.empty(), "{} needs a file name", what);
  const int flags = open_flags(mode) | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
  UniqueFd fd(::open(path.c_str(), flags, 0644));
  if (fd.get() < 0) {
    const int err = errno;
    if (err == ELOOP && target == OutputTarget::kRegularOrStream && mode == WriteMode::kAppend)
      return open_stream_through_link(path, what);
    if (err == ELOOP) refuse_output(path, what, "a symbolic link");
    if (err == EEXIST && mode == WriteMode::kExclusive)
      refuse_output(path, what, "already there (it should not be)");
    if (err == ENXIO) refuse_output(path, what, "a FIFO with no reader");
    if (err == EISDIR) refuse_output(path, what, "a folder");
    const bool runtime = err == ENOSPC || err == EDQUOT || err == EIO;
    throw Error(runtime ? ErrorKind::kRuntime : ErrorKind::kUsage,
                fmt::format("cannot create {} {}: {}", what, shown(path), std::strerror(err)),
                runtime ? "free space on that file system"
                        : "check that the folder exists and is writable");
  }
  struct stat st {};
  CONVEYOR_CHECK(fstat(fd.get(), &st) == 0, "cannot stat {} {}: {}", what, shown(path),
                 std::strerror(errno));
  const bool stream = S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) || S_ISSOCK(st.st_mode);
  if (!S_ISREG(st.st_mode) && !(stream && target == OutputTarget::kRegularOrStream))
    refuse_output(path, what, kind_of(st.st_mode));
  if (mode == WriteMode::kTruncate && S_ISREG(st.st_mode) && ftruncate(fd.get(), 0) != 0) {
    throw Error(ErrorKind::kRuntime,
                fmt::format("cannot empty {} {}: {}", what, shown(path), std::strerror(errno)));
  }
  set_blocking(fd.get());
  return fd;
}

std::unique_ptr<std::FILE, int (*)(std::FILE*)> open_output_stream(const fs::path& path,
                                                                   WriteMode mode,
                                                                   std::string_view what,
                                                                   OutputTarget target) {
  UniqueFd fd = open_output_file(path, mode, what, target);
  std::FILE* file = ::fdopen(fd.get(), mode == WriteMode::kAppend ? "a" : "w");
  CONVEYOR_CHECK(file != nullptr, "cannot open {} {}: {}", what, shown(path), std::strerror(errno));
  fd.release();  // the stream owns it now
  return {file, &std::fclose};
}

bool is_plain_regular_file(const fs::path& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

UniqueFd open_input_file(const fs::path& path, std::string_view what) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0) {
    const int err = errno;
    throw Error(ErrorKind::kUsage,
                fmt::format("cannot read {} {}: {}", what, shown(path),
                            err == ELOOP ? "too many levels of symbolic links (a link loop?)"
                                         : std::strerror(err)),
                "check the path");
  }
  struct stat st {};
  CONVEYOR_CHECK(fstat(fd.get(), &st) == 0, "cannot stat {} {}: {}", what, shown(path),
                 std::strerror(errno));
  if (!S_ISREG(st.st_mode)) {
    throw Error(ErrorKind::kUsage,
                fmt::format("{} {} is {}, not a regular file; conveyor reads only regular files",
                            what, shown(path), kind_of(st.st_mode)),
                "give the path of a regular file");
  }
  set_blocking(fd.get());
  return fd;
}

std::string read_input_file(const fs::path& path, std::string_view what, uint64_t max_bytes) {
  UniqueFd fd = open_input_file(path, what);
  std::string content;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(ErrorKind::kUsage,
                  fmt::format("cannot read {} {}: {}", what, shown(path), std::strerror(errno)));
    }
    if (content.size() + static_cast<uint64_t>(n) > max_bytes) {
      throw Error(ErrorKind::kUsage, fmt::format("{} {} is larger than {} bytes; it is not the "
                                                 "file it should be",
                                                 what, shown(path), max_bytes));
    }
    content.append(buffer, static_cast<size_t>(n));
  }
  return content;
}

void write_all(int fd, std::string_view bytes, std::string_view what, const fs::path& path) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      throw Error(ErrorKind::kRuntime,
                  fmt::format("writing {} {} failed: {}", what, shown(path), std::strerror(errno)),
                  "check that the disk is not full");
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

namespace {

void fsync_path(const fs::path& path, int flags, const char* what) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC | O_NONBLOCK));
  if (fd.get() < 0) {
    throw Error(ErrorKind::kRuntime, fmt::format("cannot open {} {} to fsync it: {}", what,
                                                 shown(path), std::strerror(errno)));
  }
  if (::fsync(fd.get()) != 0) {
    throw Error(ErrorKind::kRuntime,
                fmt::format("fsync of {} {} failed: {}", what, shown(path), std::strerror(errno)),
                "check that the file system is writable and not full");
  }
}

}  // namespace

void fsync_file(const fs::path& path) {
  fsync_path(path, O_RDONLY | O_NOFOLLOW, "file");
}

void fsync_dir(const fs::path& dir) {
  fsync_path(dir, O_RDONLY | O_DIRECTORY, "directory");
}

void rename_path(const fs::path& from, const fs::path& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    throw Error(ErrorKind::kRuntime, fmt::format("cannot rename {} to {}: {}", shown(from),
                                                 shown(to), std::strerror(errno)));
  }
}

fs::path temporary_path_beside(const fs::path& path) {
  fs::path tmp = path;
  tmp += ".tmp";
  return tmp;
}

void check_replaceable(const fs::path& path) {
  // Renaming over a device or FIFO would replace it (as root, /dev/full became a file).
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
    throw Error(
        ErrorKind::kRuntime,
        fmt::format("{} exists and is {}; it was left as it is", shown(path), kind_of(st.st_mode)),
        "write to the path of a regular file");
  }
}

void rename_into_place(const fs::path& tmp, const fs::path& path) {
  check_replaceable(path);
  rename_path(tmp, path);
  const fs::path parent = path.parent_path();
  fsync_dir(parent.empty() ? fs::path(".") : parent);
}

void write_file_atomic(const fs::path& path, const std::string& text) {
  const fs::path tmp = temporary_path_beside(path);
  ::unlink(tmp.c_str());  // a stale or planted one; unlink never follows a link
  try {
    UniqueFd fd = open_output_file(tmp, WriteMode::kExclusive, "temporary file");
    write_all(fd.get(), text, "temporary file", tmp);
    if (::fsync(fd.get()) != 0) {
      throw Error(ErrorKind::kRuntime,
                  fmt::format("fsync of {} failed: {}", shown(tmp), std::strerror(errno)),
                  "check that the file system is writable and not full");
    }
    fd = UniqueFd();
    rename_into_place(tmp, path);
  } catch (...) {
    ::unlink(tmp.c_str());  // no half-written temporary file is left behind
    throw;
  }
}

Error from_filesystem_error(const fs::filesystem_error& e) {
  const int err = e.code().value();
  const bool usage =
      e.code().category() == std::generic_category() ||
              e.code().category() == std::system_category()
          ? (err == ELOOP || err == ENOENT || err == ENOTDIR || err == EISDIR ||
             err == ENAMETOOLONG || err == EACCES || err == EPERM || err == EEXIST || err == EROFS)
          : false;
  std::string paths = shown(e.path1());
  if (!e.path2().empty()) paths += " and " + shown(e.path2());
  return Error(usage ? ErrorKind::kUsage : ErrorKind::kRuntime,
               fmt::format("cannot use {}: {}", paths,
                           err == ELOOP ? "too many levels of symbolic links (a link loop?)"
                                        : e.code().message()),
               usage ? "check the path" : "");
}

}  // namespace conveyor
