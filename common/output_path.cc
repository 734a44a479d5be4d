#include "common/output_path.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/error.h"

namespace conveyor {

namespace fs = std::filesystem;

void require_writable_output(const std::string& path, const std::string& flag, OutputKind kind) {
  CONVEYOR_REQUIRE(!path.empty(), "{} needs a file name", flag);
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);  // follows a symlink to what it names
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

}  // namespace conveyor
