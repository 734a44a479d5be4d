#include "data/token_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>

#include "common/error.h"
#include "common/file_io.h"
#include "common/printable.h"

namespace conveyor::data {

namespace fs = std::filesystem;

namespace {

// Hidden: a data folder's listing skips names starting with '.', so a job that lists the
// folder while this is written never reads a half-written shard.
fs::path temporary_of(const fs::path& path) {
  std::string name = ".";
  name += path.filename().string();
  name += ".tmp";
  return path.parent_path() / name;
}

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  return "a device";
}

}  // namespace

void write_token_file(const std::string& path, const std::vector<uint16_t>& tokens) {
  CONVEYOR_REQUIRE(tokens.size() <= static_cast<size_t>(std::numeric_limits<int32_t>::max()),
                   "{}: {} tokens do not fit in a token file's int32 count", printable(path, 512),
                   tokens.size());
  // Replaced, never rewritten in place: a training job may have the old file mapped
  // (data/mapped_file.h), and truncating it under the mapping kills that job with SIGBUS.
  // What stands at `path` must be a regular file or a link (the rename replaces the link).
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
    throw Error(ErrorKind::kUsage,
                fmt::format("token file {} is {}; conveyor replaces only regular files and left "
                            "it as it is",
                            printable(path, 512), kind_of(st.st_mode)),
                "remove it, or write the shards to another folder");
  }
  const fs::path tmp = temporary_of(path);
  ::unlink(tmp.c_str());  // a stale or planted one; unlink never follows a link
  try {
    UniqueFd fd = open_output_file(tmp, WriteMode::kExclusive, "temporary token file");
    int32_t header[kTokenFileHeaderInts] = {};
    header[0] = kTokenFileMagic;
    header[1] = kTokenFileVersion;
    header[2] = static_cast<int32_t>(tokens.size());
    write_all(fd.get(), {reinterpret_cast<const char*>(header), sizeof header}, "token file", tmp);
    write_all(fd.get(),
              {reinterpret_cast<const char*>(tokens.data()), tokens.size() * sizeof(uint16_t)},
              "token file", tmp);
    if (::fsync(fd.get()) != 0) {
      throw Error(ErrorKind::kRuntime,
                  fmt::format("fsync of token file {} failed: {}", printable(tmp.string(), 512),
                              std::strerror(errno)),
                  "check free disk space and permissions");
    }
    fd = UniqueFd();
    rename_path(tmp, path);
  } catch (...) {
    ::unlink(tmp.c_str());  // no half-written shard is left behind
    throw;
  }
  const fs::path parent = fs::path(path).parent_path();
  fsync_dir(parent.empty() ? fs::path(".") : parent);
}

}  // namespace conveyor::data
