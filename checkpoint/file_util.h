// Durable file operations for the commit protocol: fsync of files and directories, and
// whole-file replacement by temp file + fsync + rename. All throw conveyor::Error(kRuntime)
// naming the path on failure. Blocking; thread-safe (no shared state).
#pragma once

#include "common/read_file.h"

#include <cstdint>
#include <filesystem>
#include <string>

namespace conveyor::checkpoint {

// Flushes a file's data and metadata to stable storage.
void fsync_file(const std::filesystem::path& path);
// Flushes a directory, making renames and new entries in it durable.
void fsync_dir(const std::filesystem::path& dir);
// Replaces `path` with `text`: writes `path`.tmp, fsyncs it, renames it over `path`, fsyncs
// the parent directory. A reader sees the old or the new content, never a mix. When writing
// or renaming fails, `path`.tmp is removed before the Error propagates. Refuses (kRuntime,
// nothing written) when `path` exists and is not a regular file (a device, FIFO, folder).
void write_file_atomic(const std::filesystem::path& path, const std::string& text);
// Reads a whole file (common/read_file.h).
using conveyor::read_text_file;
// rename(2) with an Error naming both paths.
void rename_path(const std::filesystem::path& from, const std::filesystem::path& to);
// `text` with every byte outside printable ASCII written as \xNN, cut to `max_bytes` (and
// then ending in "..."): for quoting a file's content in a log line or message.
std::string printable(const std::string& text, size_t max_bytes = 64);

}  // namespace conveyor::checkpoint
