// Checkpointing from the trainer's side: which step to resume from, loading this stage's
// parameters and optimizer state by name (from whichever shard holds them, so a job can
// resume on a different number of stages), and saving: synchronously, or asynchronously
// with a host snapshot written by a background thread.
//
// Collective: every stage calls the same functions at the same steps. Rank 0 removes stale
// temporary directories, picks the step to resume from, and commits each save once every
// stage has written its shard.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "checkpoint/writer.h"
#include "model/stage_model.h"
#include "pipeline/train_config.h"

namespace conveyor::transport {
class Transport;
}

namespace conveyor::pipeline {

class StageCheckpoint {
 public:
  // transport is null with one stage.
  StageCheckpoint(const TrainConfig& config, model::StageModel& model, int stage,
                  transport::Transport* transport);
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

  // Async saves: the per-step status this stage contributes to the step's all-reduce, and
  // what to do with the summed status (commit when every stage is done, report a failure).
  // Status layout: 2 doubles {written, failed}.
  static constexpr int kStatusSize = 2;
  void fill_status(double* out) const;
  void on_status(const double* summed);

  // Finishes a save still in flight (blocking). Call before the end of the run.
  void finish();

 private:
  struct Snapshot;
  // What write_shard needs for this stage: the state, and the three arrays (laid out like
  // the model's parameter store) named and shaped by the parameter table.
  checkpoint::ShardContents shard_contents(int64_t steps_done, nlohmann::json state,
                                           const float* params, const float* exp_avg,
                                           const float* exp_avg_sq) const;
  void write_and_commit(int64_t steps_done);
  void commit(int64_t steps_done);
  void complete_async();
  // Waits for rank 0's background commit; throws Error(kRuntime) if it failed.
  void join_commit();
  nlohmann::json state_json(int64_t steps_done) const;
  std::string model_fingerprint() const;

  const TrainConfig& config_;
  model::StageModel& model_;
  int stage_;
  transport::Transport* transport_;

  // Async save in flight (-1: none).
  int64_t async_step_ = -1;
  std::unique_ptr<Snapshot> snapshot_;
  std::thread writer_;                      // the background shard writer, then (rank 0) the commit
  std::atomic<int> writer_state_{0};        // 0 running, 1 written, 2 failed
  std::atomic<bool> snapshot_taken_{true};  // the writer has copied the state (or failed to)
  std::string writer_error_;
  int64_t last_failed_step_ = -1;  // an async save that failed (for finish())
  std::string commit_error_;       // set by the background commit
};

}  // namespace conveyor::pipeline
