// One way to open a file conveyor writes, and one way to open a file it reads.
//
// Outputs (the checkpoint lock, metrics, traces and their parts, checkpoints' temporary
// files, exports, token shards):
// - a symbolic link at the path is never followed: a link planted where conveyor writes
//   would otherwise make it overwrite, or later empty or delete, whatever the link names;
// - a FIFO or device at the path is never blocked on and never replaced: outputs are opened
//   O_NONBLOCK, then anything that is not a regular file is refused (except where a stream
//   is asked for: `--metrics /dev/stdout`);
// - what replaces a file is written whole under a fresh temporary name and renamed into
//   place (write_file_atomic), so a reader sees the old or the new content, never a mix,
//   and a reader that has the old file mapped keeps its bytes.
// Inputs (configs, manifests, LATEST, hostfiles, model files, token files):
// - links are followed (a data file may well be one), but only a regular file is read: a
//   FIFO, device, socket or folder is refused at once with Error(kUsage), never blocked on.
//
// Errors name the path and what to do. Usage errors (exit 2) where the path is the user's
// to fix; runtime errors (exit 1) where the file system failed (a full disk). Thread-safe:
// no shared state.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "common/error.h"

namespace conveyor {

// An owned file descriptor (closed on destruction).
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd();
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

enum class WriteMode {
  kTruncate,   // create or empty a regular file
  kAppend,     // create or append to a regular file
  kExclusive,  // create a new file; one already there (a planted link among them) is refused
  kLock,       // create or open a regular file for reading and writing, content kept
};

// What may stand at an output path besides a regular file.
enum class OutputTarget {
  kRegularFile,      // only a regular file
  kRegularOrStream,  // also a FIFO with a reader, a terminal, a device (/dev/stdout, via its
                     // link): for an appended stream like --metrics; never a link to a file
};

// Opens `path` for writing (see the contract above). `what` names the output in messages
// ("--metrics file", "checkpoint lock file"). Throws Error(kUsage) for a link, a
// non-regular file, a missing or unwritable folder; returns a blocking descriptor, O_CLOEXEC.
UniqueFd open_output_file(const std::filesystem::path& path, WriteMode mode, std::string_view what,
                          OutputTarget target = OutputTarget::kRegularFile);

// The same as a stdio stream ("w" or "a" semantics from `mode`). Never null.
std::unique_ptr<std::FILE, int (*)(std::FILE*)> open_output_stream(
    const std::filesystem::path& path, WriteMode mode, std::string_view what,
    OutputTarget target = OutputTarget::kRegularFile);

// True when `path` is a regular file, not reached through a symbolic link (lstat).
bool is_plain_regular_file(const std::filesystem::path& path);

// Opens an input for reading: follows links, refuses anything but a regular file (a FIFO is
// refused without blocking). Throws Error(kUsage) naming `what` and the path.
UniqueFd open_input_file(const std::filesystem::path& path, std::string_view what = "file");

// The bytes of the input `path`, at most `max_bytes` of it (more is refused with kUsage: an
// input that huge is not the file it claims to be).
std::string read_input_file(const std::filesystem::path& path, std::string_view what = "file",
                            uint64_t max_bytes = uint64_t{1} << 32);

// Writes all of `bytes` to `fd` (retrying short writes and EINTR). Throws Error(kRuntime)
// naming `what` and `path` when the file system refuses (a full disk).
void write_all(int fd, std::string_view bytes, std::string_view what,
               const std::filesystem::path& path);

// Flushes a file's data and metadata, or a directory's entries, to stable storage.
// Throw Error(kRuntime) naming the path.
void fsync_file(const std::filesystem::path& path);
void fsync_dir(const std::filesystem::path& dir);

// rename(2) with an Error(kRuntime) naming both paths. Renaming never follows a link: a
// link at `to` is itself replaced.
void rename_path(const std::filesystem::path& from, const std::filesystem::path& to);

// Throws Error(kRuntime) when `path` is a folder, FIFO, device or socket: something a rename
// must not replace. Nothing when it is missing, a regular file or a link.
void check_replaceable(const std::filesystem::path& path);

// Renames the finished (and fsynced) temporary file `tmp` over `path` and fsyncs the folder:
// the last step of every replacement. Refuses (kRuntime, nothing renamed) when `path` is a
// folder, FIFO or device; a link at `path` is itself replaced, never written through.
void rename_into_place(const std::filesystem::path& tmp, const std::filesystem::path& path);

// Replaces `path` with `text`: writes the temporary file beside it (whatever stood at that
// name is unlinked first and the file is created exclusively, so nothing planted is
// followed), fsyncs it, renames it over `path`, fsyncs the folder. Refuses (kRuntime, nothing
// written) when `path` is a folder, FIFO or device. The temporary file is removed when anything
// fails.
void write_file_atomic(const std::filesystem::path& path, const std::string& text);

// The temporary name write_file_atomic uses beside `path`: "<path>.tmp" (a crash leaves it;
// the checkpoint directory's clean-up knows the name).
std::filesystem::path temporary_path_beside(const std::filesystem::path& path);

// A std::filesystem error as conveyor's Error: kUsage (exit 2) when the path is the user's to
// fix (missing, a link loop, a file where a folder belongs, no permission, a name too long),
// kRuntime otherwise; the message names the path(s), escaped.
Error from_filesystem_error(const std::filesystem::filesystem_error& e);

}  // namespace conveyor
