#include "pipeline/stage_checkpoint.h"

#include <xxhash.h>

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "checkpoint/checkpoint.h"
#include "checkpoint/fault_injection.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "transport/transport.h"

namespace conveyor::pipeline {

namespace fs = std::filesystem;

namespace {

constexpr double kTimeoutSeconds = 600;
Deadline deadline() {
  return Deadline::after_seconds(kTimeoutSeconds);
}

std::vector<uint8_t> to_bytes(const std::string& s) {
  return {s.begin(), s.end()};
}
std::string from_bytes(const std::vector<uint8_t>& b) {
  return {b.begin(), b.end()};
}

}  // namespace

// Host copies of the store's buffers, taken at a step boundary for an async save.
struct StageCheckpoint::Snapshot {
  std::vector<float> params, exp_avg, exp_avg_sq;
  nlohmann::json state;
};

StageCheckpoint::StageCheckpoint(const TrainConfig& config, model::StageModel& model, int stage,
                                 transport::Transport* transport)
    : config_(config), model_(model), stage_(stage), transport_(transport) {}

StageCheckpoint::~StageCheckpoint() {
  if (writer_.joinable()) writer_.join();
}

std::string StageCheckpoint::model_fingerprint() const {
  const std::string text = config_.model.to_json().dump();
  return fmt::format("{:016x}", XXH3_64bits(text.data(), text.size()));
}

nlohmann::json StageCheckpoint::state_json(int64_t steps_done) const {
  return {{"step", steps_done},
          {"seed", config_.seed},
          {"sampler", {{"seed", config_.seed}, {"next_step", steps_done}}},
          {"lr_schedule",
           {{"lr", config_.optim.lr},
            {"warmup", config_.optim.warmup},
            {"steps", config_.steps},
            {"min_lr_ratio", config_.optim.min_lr_ratio}}},
          {"config", config_.to_json()}};
}

int64_t StageCheckpoint::restore() {
  std::string chosen;  // step directory to load, agreed by every stage
  const std::string mode = config_.resume.empty() ? (enabled() ? "auto" : "none") : config_.resume;
  if (stage_ == 0) {
    if (enabled()) {
      const int removed = checkpoint::remove_stale_temp_dirs(config_.ckpt_dir);
      if (removed > 0) {
        CONVEYOR_LOG_INFO("removed {} unfinished checkpoint director{} in {}", removed,
                          removed == 1 ? "y" : "ies", config_.ckpt_dir);
      }
    }
    if (mode == "auto") {
      CONVEYOR_REQUIRE(enabled(), "--resume auto needs --ckpt-dir to say where to look");
      if (auto latest = checkpoint::find_latest(config_.ckpt_dir)) {
        chosen = latest->string();
      } else if (fs::is_directory(config_.ckpt_dir)) {
        // Committed steps that all fail verification: starting over would silently throw the
        // run away and then commit steps that look like its continuation.
        for (const auto& entry : fs::directory_iterator(config_.ckpt_dir)) {
          const std::string name = entry.path().filename().string();
          CONVEYOR_REQUIRE(!(entry.is_directory() && name.rfind("step_", 0) == 0),
                           "--ckpt-dir {} holds committed checkpoints but none of them verifies "
                           "(see the warnings above); repair or remove them, pick one with "
                           "--resume PATH, or start over with --resume none",
                           config_.ckpt_dir);
        }
      }
    } else if (mode != "none") {
      CONVEYOR_REQUIRE(fs::exists(mode), "--resume {}: no such file or directory", mode);
      fs::path dir = checkpoint::resolve_step_dir(mode);
      checkpoint::verify(dir);
      chosen = dir.string();
    }
  }
  if (transport_) {
    auto bytes = to_bytes(chosen);
    transport_->broadcast(bytes, 0, deadline());
    chosen = from_bytes(bytes);
  }
  if (chosen.empty()) return 0;

  checkpoint::CheckpointReader reader(chosen);
  const auto& saved = reader.manifest().config;
  // The model's shape must match; the pipeline layout may differ (resharding).
  const nlohmann::json mine = config_.model.to_json();
  const nlohmann::json theirs = saved.contains("model") ? saved["model"] : nlohmann::json();
  for (const auto& [key, value] : mine.items()) {
    CONVEYOR_REQUIRE(theirs.contains(key) && theirs[key] == value,
                     "checkpoint {} was trained with {} = {} but this run has --{} {}; use the "
                     "checkpoint's value or start a fresh run (--resume none or another "
                     "--ckpt-dir)",
                     chosen, key, theirs.contains(key) ? theirs[key].dump() : "(missing)", key,
                     value.dump());
  }
  if (saved.value("seed", config_.seed) != config_.seed ||
      saved.value("steps", config_.steps) != config_.steps) {
    CONVEYOR_LOG_WARN(
        "resuming with a different --seed or --steps than the checkpoint's: the "
        "continuation will not match an uninterrupted run");
  }
  auto& store = model_.store();
  for (size_t i = 0; i < store.specs().size(); ++i) {
    const auto& spec = store.specs()[i];
    CONVEYOR_REQUIRE(reader.has(spec.name), "checkpoint {} has no parameter {}", chosen, spec.name);
    const int idx = static_cast<int>(i);
    reader.read(checkpoint::kParams, spec.name, store.param(idx).data(), spec.numel());
    reader.read(checkpoint::kExpAvg, spec.name, store.exp_avg(idx).data(), spec.numel());
    reader.read(checkpoint::kExpAvgSq, spec.name, store.exp_avg_sq(idx).data(), spec.numel());
  }
  const int64_t steps_done = reader.state().at("step").get<int64_t>();
  if (stage_ == 0) {
    CONVEYOR_LOG_INFO("resumed from {} (step {}, saved by {} stage(s))", chosen, steps_done,
                      reader.manifest().num_stages);
  }
  return steps_done;
}

void StageCheckpoint::commit(int64_t steps_done) {
  if (stage_ == 0) {
    checkpoint::commit_step(config_.ckpt_dir, steps_done, config_.stages, config_.to_json(),
                            model_fingerprint(), config_.keep);
  }
}

checkpoint::ShardContents StageCheckpoint::shard_contents(int64_t steps_done, nlohmann::json state,
                                                          const float* params, const float* exp_avg,
                                                          const float* exp_avg_sq) const {
  const auto& store = model_.store();
  checkpoint::ShardContents contents;
  contents.step = steps_done;
  contents.stage = stage_;
  contents.num_stages = config_.stages;
  contents.state = std::move(state);
  for (size_t i = 0; i < store.specs().size(); ++i) {
    const auto& spec = store.specs()[i];
    const size_t off = store.offset(static_cast<int>(i));
    contents.params.push_back({spec.name, spec.shape, params + off});
    contents.exp_avg.push_back({spec.name, spec.shape, exp_avg + off});
    contents.exp_avg_sq.push_back({spec.name, spec.shape, exp_avg_sq + off});
  }
  return contents;
}

void StageCheckpoint::write_and_commit(int64_t steps_done) {
  auto& store = model_.store();
  const auto contents = shard_contents(steps_done, state_json(steps_done), store.params().data(),
                                       store.exp_avg().data(), store.exp_avg_sq().data());
  const auto tmp = checkpoint::begin_step(config_.ckpt_dir, steps_done);
  checkpoint::write_shard(tmp, contents);
  if (transport_) transport_->barrier(deadline());  // every shard is written
  commit(steps_done);
  if (transport_) transport_->barrier(deadline());  // committed before anyone goes on
}

void StageCheckpoint::save(int64_t steps_done) {
  if (!enabled()) return;
  if (!config_.async_save) {
    write_and_commit(steps_done);
    return;
  }
  if (async_step_ >= 0) complete_async();  // at most one save in flight
  join_commit();
  // The snapshot buffers are kept between saves: fresh ones would page-fault the whole state in
  // again on every save (measured: ~200 ms for 40 MB on the dev VM, more than a sync save).
  if (!snapshot_) snapshot_ = std::make_unique<Snapshot>();
  snapshot_->state = state_json(steps_done);
  async_step_ = steps_done;
  writer_state_ = 0;
  writer_error_.clear();
  snapshot_taken_.store(false);
  auto work = [this, steps_done] {
    // The snapshot is copied here, while the training thread runs the next step's forward and
    // backward passes (which only read the parameters and optimizer state); the optimizer
    // update waits in before_update() until the copy is done. So the step boundary costs no
    // copy at all (it was most of the stall: 38 MB on the training thread).
    if (checkpoint::fault::armed("CONVEYOR_FAULT_SLOW_SNAPSHOT", steps_done, stage_))
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    try {
      auto& store = model_.store();
      snapshot_->params.assign(store.params().begin(), store.params().end());
      snapshot_->exp_avg.assign(store.exp_avg().begin(), store.exp_avg().end());
      snapshot_->exp_avg_sq.assign(store.exp_avg_sq().begin(), store.exp_avg_sq().end());
    } catch (const std::exception& e) {
      writer_error_ = fmt::format("taking the host snapshot failed: {}", e.what());
    }
    snapshot_taken_.store(true);
    snapshot_taken_.notify_all();
    if (!writer_error_.empty()) {
      writer_state_ = 2;
      return;
    }
    // Below the training threads: on a busy host the save should wait, not the step.
    setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10);
    try {
      const auto contents = shard_contents(steps_done, snapshot_->state, snapshot_->params.data(),
                                           snapshot_->exp_avg.data(), snapshot_->exp_avg_sq.data());
      const auto tmp = checkpoint::begin_step(config_.ckpt_dir, steps_done);
      checkpoint::write_shard(tmp, contents);
      writer_state_ = 1;
    } catch (const std::exception& e) {
      writer_error_ = e.what();
      writer_state_ = 2;
    }
  };
  try {
    writer_ = std::thread(work);
  } catch (...) {  // no thread: nothing will copy, so before_update() must not wait
    snapshot_taken_.store(true);
    async_step_ = -1;
    throw;
  }
}

void StageCheckpoint::before_update() {
  // No deadline needed: the writer sets the flag after a bounded memory copy, even when the
  // copy fails.
  snapshot_taken_.wait(false);
}

void StageCheckpoint::fill_status(double* out) const {
  out[0] = async_step_ >= 0 && writer_state_ == 1 ? 1.0 : 0.0;
  out[1] = async_step_ >= 0 && writer_state_ == 2 ? 1.0 : 0.0;
}

void StageCheckpoint::on_status(const double* summed) {
  if (async_step_ < 0) return;
  const int written = static_cast<int>(summed[0]), failed = static_cast<int>(summed[1]);
  if (failed > 0) {
    if (writer_.joinable()) writer_.join();
    if (writer_state_ == 2) {
      CONVEYOR_LOG_ERROR("checkpoint: async save of step {} failed on this stage: {}", async_step_,
                         writer_error_);
    }
    if (stage_ == 0) {
      CONVEYOR_LOG_ERROR(
          "checkpoint: async save of step {} failed on {} stage(s); it was not "
          "committed (LATEST still names the previous checkpoint); training goes on",
          async_step_, failed);
    }
    last_failed_step_ = async_step_;
  } else if (written == config_.stages) {
    if (writer_.joinable()) writer_.join();
    if (stage_ == 0) {
      // The commit (manifest, renames, directory fsyncs) runs off the training thread too;
      // the next save or finish() waits for it and reports its failure.
      const int64_t step = async_step_;
      writer_ = std::thread([this, step] {
        try {
          commit(step);
        } catch (const std::exception& e) {
          commit_error_ = fmt::format("committing checkpoint step {} failed: {}", step, e.what());
        }
      });
    }
  } else {
    return;  // still writing somewhere
  }
  async_step_ = -1;  // snapshot_ stays allocated for the next save
}

void StageCheckpoint::complete_async() {
  if (async_step_ < 0) return;
  if (writer_.joinable()) writer_.join();
  double status[kStatusSize];
  fill_status(status);
  if (transport_) {
    auto summed =
        transport_->all_reduce_sum(std::span<const double>(status, kStatusSize), deadline());
    on_status(summed.data());
  } else {
    on_status(status);
  }
}

void StageCheckpoint::join_commit() {
  if (writer_.joinable()) writer_.join();
  if (!commit_error_.empty()) throw Error(ErrorKind::kRuntime, commit_error_);
}

void StageCheckpoint::finish() {
  last_failed_step_ = -1;
  complete_async();
  join_commit();
  // The last save of a run must not be lost silently: a failed sync save throws too.
  if (last_failed_step_ >= 0) {
    throw Error(ErrorKind::kRuntime,
                fmt::format("the final checkpoint (step {}) could not be written; LATEST names "
                            "the previous one",
                            last_failed_step_),
                "see the errors above for the cause (disk full? permissions?)");
  }
}

}  // namespace conveyor::pipeline
