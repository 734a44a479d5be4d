// Reading a whole file into memory.
#pragma once

#include <filesystem>
#include <string>

namespace conveyor {

// The bytes of `path`. Throws Error(kUsage) naming the path and the reason when it cannot be
// read (these are input files: the user can fix the path).
std::string read_text_file(const std::filesystem::path& path);

}  // namespace conveyor
