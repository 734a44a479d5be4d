// File helpers of the checkpoint library and its neighbours (common/file_io.h: no link
// followed, a regular file or nothing, whole-file replacement by temporary file + fsync +
// rename). The writer and the commit protocol make their durable changes through
// checkpoint/file_system.h instead, so that a test can crash them at any call.
#pragma once

#include "common/file_io.h"

#include <cstdint>
#include <filesystem>
#include <string>

namespace conveyor::checkpoint {

using conveyor::read_input_file;
using conveyor::write_file_atomic;
// `text` with every byte outside printable ASCII written as \xNN, cut to `max_bytes` (and
// then ending in "..."): for quoting a file's content in a log line or message.
std::string printable(const std::string& text, size_t max_bytes = 64);

}  // namespace conveyor::checkpoint
