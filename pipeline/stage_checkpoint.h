// Checkpointing from the trainer's side: which step to resume from, loading this stage's
// parameters and optimizer state by name (from whichever shard holds them, so a job can
// resume on a different number of stages), and saving: synchronously, or asynchronously
// with a host snapshot written by a background thread.
//
// Collective: every stage calls the same functions at the same steps. The topology's
// coordinator rank removes stale temporary directories, picks the step to resume from, and
// commits each save once every stage has written its shard.
//
// An async save is one state machine (AsyncSave below). The training thread starts it and
// moves it on from the step's reduction; the background thread copies the snapshot and
// writes the shard:
//   kIdle --save()--> kCopying --(snapshot copied)--> kWriting --> kWritten | kFailed
//   kCopying --(copy failed)--> kFailed
//   kWritten on every stage --on_progress()--> kCommitting (coordinator) or kIdle (others)
//   kFailed on any stage --on_progress()--> kIdle (the save is dropped, training goes on)
//   kCommitting --(next save or finish() joins the commit)--> kIdle
// before_update() waits while kCopying.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "checkpoint/writer.h"
#include "model/stage_model.h"
#include "pipeline/step_reduction.h"
#include "pipeline/topology.h"
#include "pipeline/train_config.h"

namespace conveyor::transport {
class Transport;
}

namespace conveyor::pipeline {

class StageCheckpoint {
 public:
  // transport is null with one rank.
  StageCheckpoint(const TrainConfig& config, model::StageModel& model, const Topology& topology,
                  int rank, transport::Transport* transport);
  ~StageCheckpoint();  // joins a background save (its result is then dropped)

  bool enabled() const { return !config_.ckpt_dir.empty(); }

  // Applies --resume: loads the chosen checkpoint into the model and returns the number of
  // steps it had done (0 when starting fresh). Throws Error(kUsage) for a checkpoint that
  // does not fit the model (naming the field and both values), a PATH with no committed
  // step, or a checkpoint that fails verification.
  int64_t restore();

  // Saves the state after `steps_done` steps. Async (with --async-save): a background thread
  // copies the state to host memory and then writes it; a save still in flight is finished
  // first. Returns without copying anything: the caller must call before_update() before it
  // next modifies the parameters or the optimizer state.
  void save(int64_t steps_done);

  // Blocks until the snapshot of the last async save has been copied (normally long done: it
  // overlaps the next step's forward and backward passes). Call before every optimizer
  // update; a no-op without an async save.
  void before_update();

  // Async saves: what this stage contributes to the step's reduction, and what to do with
  // the sum over stages (commit when every stage has written, drop the save on a failure).
  SaveProgress progress() const;
  void on_progress(const SaveProgress& summed);

  // Finishes a save still in flight (blocking). Call before the end of the run.
  void finish();

 private:
  struct Snapshot;
  // What write_shard needs for this stage: the state, and the three arrays (laid out like
  // the model's parameter store) named and shaped by the parameter table.
  checkpoint::ShardContents shard_contents(int64_t steps_done, nlohmann::json state,
                                           const float* params, const float* exp_avg,
                                           const float* exp_avg_sq) const;
  // Copies the store's params and Adam moments into snapshot_ (host memory).
  void copy_snapshot();
  void write_and_commit(int64_t steps_done);
  void commit(int64_t steps_done);
  void complete_async();
  // Waits for rank 0's background commit; throws Error(kRuntime) if it failed.
  void join_commit();
  nlohmann::json state_json(int64_t steps_done) const;

  enum class AsyncSave : int { kIdle, kCopying, kWriting, kWritten, kFailed, kCommitting };
  bool coordinator() const { return rank_ == topology_.coordinator_rank(); }

  const TrainConfig& config_;
  model::StageModel& model_;
  Topology topology_;
  int rank_, stage_;
  transport::Transport* transport_;

  std::atomic<AsyncSave> async_{AsyncSave::kIdle};
  int64_t async_step_ = -1;  // the step of the save in flight
  std::unique_ptr<Snapshot> snapshot_;
  std::thread writer_;             // the background shard writer, then (coordinator) the commit
  std::string writer_error_;       // set by the writer before it enters kFailed
  int64_t last_failed_step_ = -1;  // an async save that failed (for finish())
  std::string commit_error_;       // set by the background commit
};

}  // namespace conveyor::pipeline
