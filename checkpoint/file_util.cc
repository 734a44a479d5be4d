#include "checkpoint/file_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace conveyor::checkpoint {

namespace {

std::string errno_text() {
  return std::strerror(errno);
}

void fsync_path(const std::filesystem::path& path, int flags, const char* what) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) {
    throw Error(ErrorKind::kRuntime, fmt::format("cannot open {} {} to fsync it: {}", what,
                                                 path.string(), errno_text()));
  }
  int rc = ::fsync(fd);
  int saved = errno;
  ::close(fd);
  if (rc != 0) {
    throw Error(ErrorKind::kRuntime,
                fmt::format("fsync of {} {} failed: {}", what, path.string(), std::strerror(saved)),
                "check that the file system is writable and not full");
  }
}

}  // namespace

void fsync_file(const std::filesystem::path& path) {
  fsync_path(path, O_RDONLY, "file");
}

void fsync_dir(const std::filesystem::path& dir) {
  fsync_path(dir, O_RDONLY | O_DIRECTORY, "directory");
}

void rename_path(const std::filesystem::path& from, const std::filesystem::path& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    throw Error(ErrorKind::kRuntime, fmt::format("cannot rename {} to {}: {}", from.string(),
                                                 to.string(), errno_text()));
  }
}

void write_file_atomic(const std::filesystem::path& path, const std::string& text) {
  // Renaming over a device or FIFO would replace it (as root, /dev/full became a file).
  std::error_code ec;
  const auto existing = std::filesystem::status(path, ec);
  if (std::filesystem::exists(existing) && !std::filesystem::is_regular_file(existing)) {
    throw Error(
        ErrorKind::kRuntime,
        fmt::format("{} exists and is not a regular file; it was left as it is", path.string()),
        "write to the path of a regular file");
  }
  auto tmp = path;
  tmp += ".tmp";
  try {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    if (!out) {
      throw Error(ErrorKind::kRuntime, fmt::format("cannot write {}", tmp.string()),
                  "check that the directory exists, is writable and the disk is not full");
    }
    fsync_file(tmp);
    rename_path(tmp, path);
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);  // no half-written temp file is left behind
    throw;
  }
  auto parent = path.parent_path();
  fsync_dir(parent.empty() ? std::filesystem::path(".") : parent);
}

std::string printable(const std::string& text, size_t max_bytes) {
  std::string out;
  for (size_t i = 0; i < text.size() && i < max_bytes; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (text.size() > max_bytes) out += "...";
  return out;
}

}  // namespace conveyor::checkpoint
