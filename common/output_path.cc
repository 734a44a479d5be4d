#include "common/output_path.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/error.h"
#include "common/printable.h"

namespace conveyor {

namespace fs = std::filesystem;

void require_writable_output(const std::string& path, const std::string& flag, OutputKind kind) {
  CONVEYOR_REQUIRE(!path.empty(), "{} needs a file name", flag);
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);  // follows a symlink to what it names
  if (kind == OutputKind::kAppended && fs::is_symlink(fs::symlink_status(path, ec)))
    CONVEYOR_REQUIRE(fs::exists(st) && !fs::is_regular_file(st) && !fs::is_directory(st),
                     "{} '{}' is a symbolic link; conveyor follows no link where it writes, so "
                     "give the path of the file itself",
                     flag, printable(path));
  if (fs::exists(st)) {
    CONVEYOR_REQUIRE(!fs::is_directory(st), "{} '{}' is a folder; give the path of a file", flag,
                     path);
    if (!fs::is_regular_file(st)) {
      CONVEYOR_REQUIRE(kind == OutputKind::kAppended,
                       "{} '{}' is not a regular file (a device, FIFO or socket); it is written "
                       "whole and renamed into place, so give the path of a file",
                       flag, path);
    }
    CONVEYOR_REQUIRE(::access(path.c_str(), W_OK) == 0, "{} '{}' is not writable: {}", flag, path,
                     std::strerror(errno));
    if (kind == OutputKind::kAppended) return;  // appended in place: the folder does not matter
  }
  fs::path folder = fs::path(path).parent_path();
  if (folder.empty()) folder = ".";
  CONVEYOR_REQUIRE(fs::is_directory(folder, ec), "{} '{}': the folder '{}' does not exist", flag,
                   path, folder.string());
  CONVEYOR_REQUIRE(::access(folder.c_str(), W_OK) == 0,
                   "{} '{}': the folder '{}' is not writable: {}", flag, path, folder.string(),
                   std::strerror(errno));
}

void require_distinct_output(const std::string& flag, const std::string& path,
                             const std::vector<std::pair<std::string, std::string>>& others) {
  std::error_code ec;
  const fs::path normal = fs::absolute(path, ec).lexically_normal();
  const bool exists = fs::exists(path, ec);
  for (const auto& [other_flag, other] : others) {
    const bool same = normal == fs::absolute(other, ec).lexically_normal() ||
                      (exists && fs::exists(other, ec) && fs::equivalent(path, other, ec));
    CONVEYOR_REQUIRE(!same,
                     "{} '{}' and {} '{}' are one file: one would overwrite the other; give them "
                     "different paths",
                     flag, printable(path), other_flag, printable(other));
  }
}

}  // namespace conveyor
