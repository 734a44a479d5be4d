// One asynchronous checkpoint save at a time, as a state machine. The training thread starts a
// save and moves it on from the step's reduction; a background thread copies the snapshot and
// writes the shard, and, on the coordinator, later commits:
//   kIdle --start()--> kCopying --(snapshot copied)--> kWriting --> kWritten | kFailed
//   kCopying --(copy failed)--> kFailed
//   kWritten on every rank --on_progress()--> kCommitting (coordinator) or kIdle (others)
//   kFailed on any rank --on_progress()--> kIdle (the save is dropped, training goes on)
//   kCommitting --(join_commit(): the next save or the end of the run)--> kIdle
// before_update() waits while kCopying. What is copied, written and committed is the
// owner's (StageCheckpoint): this class only sequences it.
//
// Thread safety: every method is for the training thread; the work runs on one background
// thread that this class starts and joins.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "pipeline/parallel/step_reduction.h"

namespace conveyor::pipeline {

class AsyncSaver {
 public:
  struct Work {
    std::function<void()> copy_snapshot;  // the state into host memory (may throw)
    std::function<void()> write_shard;    // the shard from that snapshot (may throw)
  };
  AsyncSaver() = default;
  ~AsyncSaver();  // joins the background thread (a save in flight is then dropped)
  AsyncSaver(const AsyncSaver&) = delete;
  AsyncSaver& operator=(const AsyncSaver&) = delete;

  bool idle() const;
  // Whether a started save has not yet been passed on by on_progress() (not idle, not
  // committing).
  bool in_flight() const;
  // Blocks until the background write ends; returns progress() then.
  SaveProgress wait_for_write();
  // Starts saving step `step`. REQUIRES idle(). Returns without waiting for the copy.
  void start(int64_t step, Work work);
  // Blocks while the snapshot is being copied (no deadline needed: the copy is a bounded
  // memory copy and leaves kCopying even when it fails).
  void before_update();
  // What this rank contributes to the step's reduction.
  SaveProgress progress() const;
  // With the sum over `ranks` ranks: commits (through `commit`, on a background thread; null
  // on ranks that do not commit) once every rank has written, drops the save when one failed.
  void on_progress(const SaveProgress& summed, int ranks, std::function<void(int64_t)> commit);
  // Waits for a background commit. Throws Error(kRuntime) if it failed.
  void join_commit();
  // The step of the last save that failed and was dropped (-1: none), and clears it.
  int64_t take_failed_step();

 private:
  enum class State : int { kIdle, kCopying, kWriting, kWritten, kFailed, kCommitting };
  void join();

  std::atomic<State> state_{State::kIdle};
  int64_t step_ = -1;         // the step of the save in flight
  std::thread thread_;        // the background copy and write, then (coordinator) the commit
  std::string write_error_;   // set by the thread before it enters kFailed
  std::string commit_error_;  // set by the background commit
  int64_t failed_step_ = -1;  // a save that failed
};

}  // namespace conveyor::pipeline
