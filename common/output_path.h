// Start-up checks for the files a run writes at its end or as it goes (--trace, --metrics),
// so that a path that cannot be written fails before training, not after it.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace conveyor {

enum class OutputKind {
  kReplaced,  // written whole and renamed into place: must be (or become) a regular file
  kAppended,  // opened for appending: a regular file, or a device or FIFO (/dev/stdout)
};

// Throws Error(kUsage) naming `flag` and `path` when the path is a folder, is a device or
// FIFO where `kind` needs a regular file, is a link where it is appended to (a link to a
// stream such as /dev/stdout excepted: common/file_io.h), is not writable, or its folder is missing
// or not writable. Creates nothing.
void require_writable_output(const std::string& path, const std::string& flag, OutputKind kind);

// Throws Error(kUsage) naming both flags when `path` (of `flag`) and one of `others`
// ({flag, path}) are one file (the same path once made absolute and normal, or, when both
// exist, the same file through a link or a hard link): one would overwrite the other.
void require_distinct_output(const std::string& flag, const std::string& path,
                             const std::vector<std::pair<std::string, std::string>>& others);

}  // namespace conveyor
