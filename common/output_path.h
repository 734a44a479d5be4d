// Start-up checks for the files a run writes at its end or as it goes (--trace, --metrics),
// so that a path that cannot be written fails before training, not after it.
#pragma once

#include <string>

namespace conveyor {

enum class OutputKind {
  kReplaced,  // written whole and renamed into place: must be (or become) a regular file
  kAppended,  // opened for appending: a regular file, or a device or FIFO (/dev/stdout)
};

// Throws Error(kUsage) naming `flag` and `path` when the path is a folder, is a device or
// FIFO where `kind` needs a regular file, is not writable, or its folder is missing or not
// writable. Creates nothing.
void require_writable_output(const std::string& path, const std::string& flag, OutputKind kind);

}  // namespace conveyor
