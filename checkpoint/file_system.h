// The seam under the checkpoint writer and commit protocol (after leveldb's Env): every call on
// which a checkpoint's durability rests -- creating, renaming and removing entries, fsyncing a
// file or a directory -- goes through the installed FileSystem. By default that is the POSIX
// one (common/file_io.h underneath: no link followed, errors name the path); a test installs
// another that records what each fsync made durable, crashes after any call and rewinds the
// tree to what a power cut would leave (tests/unit/checkpoint/crash_file_system.h).
//
// Not through the seam: reads (they change nothing), and the bytes of a shard, which HDF5
// writes itself; write_shard() fsyncs the shard through the seam before renaming it, so its
// content is what counts from that call on.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

namespace conveyor::checkpoint {

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  // Creates `dir` and any missing parent; one that exists already is fine. On failure `ec` is
  // set and the caller decides (several processes create the same directory at once).
  virtual void create_directories(const std::filesystem::path& dir, std::error_code& ec) = 0;
  // Creates the file `path`, which must not exist (anything there, a link among them, is
  // refused with Error(kUsage)), and writes `bytes`. Nothing of it is durable yet.
  virtual void write_new_file(const std::filesystem::path& path, std::string_view bytes) = 0;
  // Makes a file's content durable (fsync). Throws Error(kRuntime) naming the path.
  virtual void fsync_file(const std::filesystem::path& path) = 0;
  // Makes a directory's entries durable: the creations, renames and removals in it so far.
  // Throws Error(kRuntime) naming the path.
  virtual void fsync_dir(const std::filesystem::path& dir) = 0;
  // rename(2): a file or a directory; a link at `to` is itself replaced. Durable once both
  // directories are fsynced. Throws Error(kRuntime) naming both paths.
  virtual void rename(const std::filesystem::path& from, const std::filesystem::path& to) = 0;
  // Removes `path`: a file, a link (never followed) or a directory with everything in it;
  // nothing when it is missing. On failure `ec` is set (clean-up: the caller may go on).
  virtual void remove(const std::filesystem::path& path, std::error_code& ec) = 0;
};

// The installed file system: the POSIX one unless a test installed another.
FileSystem& file_system();
// The POSIX file system (what a test's file system delegates to).
FileSystem& posix_file_system();
// Makes `files` the one every checkpoint write goes through; nullptr restores the POSIX one.
// `files` must outlive its installation. Call only while no save or commit runs (a test, between
// saves); the switch itself is atomic.
void install_file_system(FileSystem* files);

// Replaces `path` with `text` through `files`, as common/file_io.h's write_file_atomic does:
// "<path>.tmp" (whatever stood there removed first, then created exclusively), fsync_file,
// rename over `path`, fsync_dir of the folder. Refuses (kRuntime, nothing written) when
// `path` is a folder, FIFO or device; the temporary file is removed when anything fails.
void write_file_atomic(FileSystem& files, const std::filesystem::path& path,
                       const std::string& text);

}  // namespace conveyor::checkpoint
