// A checkpoint::FileSystem for crash tests (after leveldb's FaultInjectionTestEnv): it does
// every call for real (the POSIX file system) and keeps a model of what a power cut would
// leave of the tree under its root, the state that survives:
//   - a file's content as of its last fsync_file (empty when it was never fsynced);
//   - a directory's entries as of its last fsync_dir: creations, renames and removals that
//     no fsync of their directory followed are not durable (a renamed directory keeps its
//     own durable entries: a rename does not change what is inside);
//   - everything under root when the object is made, or when crash() rebuilt it.
// It can crash after its k-th call: that call happens, then this and every later call throw
// Crashed, as if the process had died there. crash() then rewinds the real tree to exactly the
// durable state: unsynced files are cut back to their synced bytes, unsynced entries vanish,
// unsynced renames are undone and unsynced removals come back.
//
// Files and directories are known by inode: the model pins each one it records with an O_PATH
// descriptor, so a removed file's inode number is never reused while the model refers to it.
// Only regular files and directories may be under root. Thread-safe: calls are serialised,
// so "the k-th call" is well defined when several threads save at once.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "checkpoint/file_system.h"
#include "common/file_io.h"

namespace conveyor::checkpoint::testing {

// What every call throws from the crash on. Not a std::exception: no handler that reports
// and survives errors catches it; clean-up handlers that rethrow (catch (...)) let it pass.
struct Crashed {};

class CrashFileSystem final : public FileSystem {
 public:
  // `root` must be an existing directory; everything under it counts as durable.
  explicit CrashFileSystem(std::filesystem::path root);

  // Crash after the k-th call from now on (1-based); 0: never.
  void crash_after(int k);
  bool crashed() const;
  // One line per call so far ("rename <from> -> <to>"), paths relative to root.
  std::vector<std::string> calls() const;

  // Rewinds the tree under root to its durable state (see above), then starts afresh: that
  // state counts as durable, no crash is armed and the call list is empty. Call only when no
  // other thread uses the file system or the tree.
  void crash();

  void create_directories(const std::filesystem::path& dir, std::error_code& ec) override;
  void write_new_file(const std::filesystem::path& path, std::string_view bytes) override;
  void fsync_file(const std::filesystem::path& path) override;
  void fsync_dir(const std::filesystem::path& dir) override;
  void rename(const std::filesystem::path& from, const std::filesystem::path& to) override;
  void remove(const std::filesystem::path& path, std::error_code& ec) override;

 private:
  struct Entry {
    ino_t inode = 0;
    bool is_dir = false;
  };
  using Entries = std::map<std::string, Entry>;
  struct Tree;  // a durable state, materialised (crash_file_system.cc)

  // Counts the call and records it; throws Crashed when the process is already dead.
  void begin_call(const std::string& what);
  // Throws Crashed when this call was the one to crash after.
  void end_call();
  std::string shown(const std::filesystem::path& path) const;
  ino_t pin(const std::filesystem::path& path, bool* is_dir = nullptr);
  void record_file(const std::filesystem::path& path);
  void record_dir(const std::filesystem::path& dir);
  void record_all(const std::filesystem::path& dir);
  void build(ino_t dir, Tree& out, int depth) const;

  const std::filesystem::path root_;
  mutable std::mutex mutex_;
  int crash_after_ = 0;
  bool crashed_ = false;
  std::vector<std::string> calls_;
  ino_t root_inode_ = 0;
  std::map<ino_t, std::string> durable_content_;  // files: bytes as of the last fsync
  std::map<ino_t, Entries> durable_entries_;      // directories: entries as of the last fsync
  std::map<ino_t, UniqueFd> pinned_;
};

// Installs a file system for the checkpoint library for the life of the object.
class InstalledFileSystem {
 public:
  explicit InstalledFileSystem(FileSystem& files) { install_file_system(&files); }
  ~InstalledFileSystem() { install_file_system(nullptr); }
  InstalledFileSystem(const InstalledFileSystem&) = delete;
  InstalledFileSystem& operator=(const InstalledFileSystem&) = delete;
};

}  // namespace conveyor::checkpoint::testing
