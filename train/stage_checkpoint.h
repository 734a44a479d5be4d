// Checkpointing from the trainer's side: which step to resume from, loading this stage's
// parameters and optimizer state by name (from whichever shard holds them, so a job can
// resume on a different number of stages), and saving: synchronously, or asynchronously
// with a host snapshot written by a background thread.
//
// Collective: every rank calls the same functions at the same steps. The topology's
// coordinator rank holds the directory's lock (checkpoint/dir_lock.h) for the job's life,
// taken in restore() before any rank touches the directory; it removes stale temporary
// directories, picks the step to resume from and checks that this run may continue it, moves
// newer steps (an abandoned timeline) aside, and commits each save once every rank has
// written its shard.
//
// The pieces it is made of: the resume policy (resume_policy.h, pure), the data's identity
// (data_identity.h) and the async save's state machine (async_saver.h).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "checkpoint/dir_lock.h"
#include "checkpoint/manifest.h"
#include "checkpoint/writer.h"
#include "model/stage_model.h"
#include "pipeline/parallel/step_reduction.h"
#include "pipeline/schedule/topology.h"
#include "train/async_saver.h"
#include "train/train_config.h"

namespace conveyor::transport {
class Transport;
}

namespace conveyor::pipeline {

// The run's effective settings as TOML (what --print-config prints and --config reads), under
// this key of the manifest's config; `conveyor ckpt settings` prints it.
inline constexpr const char* kSettingsKey = "settings_toml";

// The parameters (name -> shape) of the model configuration saved in a manifest
// (config.model), which a complete checkpoint must hold: checkpoint::ExpectedParams for
// verify() and find_latest(). Empty when the manifest saved no model configuration.
// Throws Error(kUsage) when that configuration is malformed.
std::map<std::string, std::vector<int64_t>> saved_model_params(const checkpoint::Manifest& m);

class StageCheckpoint {
 public:
  // transport is null with one rank. `owned[i]`: store parameter i is this replica's
  // (GradientSync::owned_parameters) and goes into this rank's shard (empty: all). Each rank writes
  // one shard, named by its rank (stage_NNNNN.h5: the stage's number when there is one replica).
  StageCheckpoint(const TrainConfig& config, model::StageModel& model, const Topology& topology,
                  int rank, transport::Transport* transport, std::vector<bool> owned = {});
  ~StageCheckpoint();  // joins a background save (its result is then dropped)

  bool enabled() const { return !config_.ckpt_dir.empty(); }

  // Start-up, then --resume: with --ckpt-dir, the coordinator takes the directory's lock and
  // checks the directory. Then loads the chosen checkpoint into the model and returns the
  // number of steps it had done (0 when starting fresh); committed steps newer than that are
  // moved aside (checkpoint::move_aside_steps_after). Throws Error(kUsage) for a --ckpt-dir
  // that is not a writable directory or whose LATEST is not a file, one locked by another job
  // (naming it), a checkpoint that does not fit the model (naming the field and both values),
  // one trained on other data or batch settings (naming the setting; unless
  // --allow-data-change), a PATH with no committed step, or a checkpoint that fails
  // verification.
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

  // Async saves: what this rank contributes to the step's reduction, and what to do with
  // the sum over ranks (commit when every rank has written, drop the save on a failure).
  SaveProgress progress() const;
  void on_progress(const SaveProgress& summed);

  // Finishes a save still in flight (blocking). Call before the end of the run.
  void finish();

 private:
  struct Snapshot;
  // What write_shard needs for this rank's shard: the state, and the three arrays (laid out like
  // the model's parameter store) named and shaped by the parameter table.
  checkpoint::ShardContents shard_contents(int64_t steps_done, nlohmann::json state,
                                           const float* params, const float* exp_avg,
                                           const float* exp_avg_sq) const;
  // Copies the store's params and Adam moments into snapshot_ (host memory).
  void copy_snapshot();
  void write_and_commit(int64_t steps_done);
  void commit(int64_t steps_done);
  // Finishes an async save in flight: joins its writer and agrees with the other ranks.
  void complete_async();
  nlohmann::json state_json(int64_t steps_done) const;
  // Coordinator, at start-up: lock and check --ckpt-dir, remove stale temporary directories.
  void open_directory();
  // Coordinator: the step directory --resume names ("" to start afresh).
  std::string choose_step(const std::string& mode) const;
  // Every rank: loads `chosen` into the model; returns its step count.
  int64_t load(const std::string& chosen);
  bool coordinator() const { return rank_ == topology_.coordinator_rank(); }

  const TrainConfig& config_;
  model::StageModel& model_;
  Topology topology_;
  int rank_, stage_;
  transport::Transport* transport_;
  std::vector<bool> owned_;

  // The host snapshot: kept between saves, since fresh buffers would page-fault the whole
  // state in again on every save (measured: ~200 ms for 40 MB, more than a sync save).
  std::unique_ptr<Snapshot> snapshot_;
  AsyncSaver async_;

  checkpoint::DirLock lock_;      // coordinator with --ckpt-dir: held for the job's life
  nlohmann::json data_identity_;  // coordinator: data_identity(--data), once needed
};

}  // namespace conveyor::pipeline
