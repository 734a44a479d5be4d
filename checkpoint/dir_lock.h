// Exclusive use of a checkpoint directory by one job: <root>/.lock, held with flock(2) for as
// long as the DirLock lives. Two jobs given the same --ckpt-dir would otherwise resume from
// each other's steps and delete each other's temporary directories.
//
// The file holds one line of JSON naming its holder: {"host", "pid", "started"} (started:
// UTC, ISO 8601). A clean release empties it; the file itself stays, so no second job can
// ever lock a file that is about to be unlinked. The kernel drops a flock when its holder
// dies, so a lock file that still names a holder but is not locked was left by a job that
// died: it is taken over, with a warning naming that job.
//
// flock works across processes on one host and, on Linux, on NFS (as a whole-file POSIX lock).
// Two DirLocks in one process also exclude each other (separate open file descriptions).
// Thread safety: a DirLock is not shared between threads.
#pragma once

#include <filesystem>
#include <string>

namespace conveyor::checkpoint {

class DirLock {
 public:
  // Creates root (and its parents) if missing, each fsynced into its parent (through
  // file_system.h), then takes the lock without waiting.
  // Throws Error(kUsage), naming root and the reason, when root exists but is not a
  // directory, cannot be created, or is not writable; and when another process holds the
  // lock (the message names its host, pid and start time).
  static DirLock acquire(const std::filesystem::path& root);

  DirLock() = default;
  DirLock(DirLock&& other) noexcept;
  DirLock& operator=(DirLock&& other) noexcept;
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  ~DirLock();  // release()

  bool held() const { return fd_ >= 0; }
  // Empties the lock file and closes it, which releases the lock. Idempotent.
  void release();

 private:
  explicit DirLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// A lock file's content as a phrase for messages: "host h, pid 12, started 2026-...Z", or
// the text itself (non-printable bytes escaped) when it is not a holder record.
std::string describe_lock_holder(const std::string& content);

}  // namespace conveyor::checkpoint
