#include "pipeline/stage_checkpoint.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <utility>

#include "checkpoint/checkpoint.h"
#include "checkpoint/fault_injection.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "transport/transport.h"

namespace conveyor::pipeline {

namespace fs = std::filesystem;

namespace {

Deadline deadline() {
  return Deadline::after_seconds(kPeerWaitSeconds);
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

StageCheckpoint::StageCheckpoint(const TrainConfig& config, model::StageModel& model,
                                 const Topology& topology, int rank,
                                 transport::Transport* transport)
    : config_(config),
      model_(model),
      topology_(topology),
      rank_(rank),
      stage_(topology.place(rank).stage),
      transport_(transport) {}

StageCheckpoint::~StageCheckpoint() {
  if (writer_.joinable()) writer_.join();
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
  if (coordinator()) {
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
    transport_->broadcast(bytes, topology_.coordinator_rank(), deadline());
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
  auto& k = model_.backend();
  std::vector<float> host;  // read on the host, then copied to the backend's memory
  auto load = [&](const char* group, const std::string& name, std::span<float> into) {
    host.resize(into.size());
    reader.read(group, name, host.data(), host.size());
    k.from_host(into.data(), host.data(), into.size_bytes());
  };
  for (size_t i = 0; i < store.specs().size(); ++i) {
    const auto& spec = store.specs()[i];
    CONVEYOR_REQUIRE(reader.has(spec.name), "checkpoint {} has no parameter {}", chosen, spec.name);
    const int idx = static_cast<int>(i);
    load(checkpoint::kParams, spec.name, store.param(idx));
    load(checkpoint::kExpAvg, spec.name, store.exp_avg(idx));
    load(checkpoint::kExpAvgSq, spec.name, store.exp_avg_sq(idx));
  }
  k.synchronize();
  const int64_t steps_done = reader.state().at("step").get<int64_t>();
  if (coordinator()) {
    CONVEYOR_LOG_INFO("resumed from {} (step {}, saved by {} stage(s))", chosen, steps_done,
                      reader.manifest().num_stages);
  }
  return steps_done;
}

void StageCheckpoint::commit(int64_t steps_done) {
  if (coordinator()) {
    checkpoint::commit_step(config_.ckpt_dir, steps_done, config_.stages, config_.to_json(),
                            fingerprint_of(config_.model.to_json()), config_.keep);
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

void StageCheckpoint::copy_snapshot() {
  auto& store = model_.store();
  auto& k = model_.backend();
  auto copy_out = [&](std::vector<float>& to, std::span<const float> from) {
    to.resize(from.size());
    k.to_host(to.data(), from.data(), from.size_bytes());
  };
  copy_out(snapshot_->params, store.params());
  copy_out(snapshot_->exp_avg, store.exp_avg());
  copy_out(snapshot_->exp_avg_sq, store.exp_avg_sq());
  k.synchronize();
}

void StageCheckpoint::write_and_commit(int64_t steps_done) {
  auto& store = model_.store();
  const float* params = store.params().data();
  const float* exp_avg = store.exp_avg().data();
  const float* exp_avg_sq = store.exp_avg_sq().data();
  if (model_.backend().memory_type() != kernels::MemoryType::kHost) {
    // The writer reads host memory: device state goes through the snapshot buffers.
    if (!snapshot_) snapshot_ = std::make_unique<Snapshot>();
    copy_snapshot();
    params = snapshot_->params.data();
    exp_avg = snapshot_->exp_avg.data();
    exp_avg_sq = snapshot_->exp_avg_sq.data();
  }
  const auto contents =
      shard_contents(steps_done, state_json(steps_done), params, exp_avg, exp_avg_sq);
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
  complete_async();  // at most one save in flight
  join_commit();
  // The snapshot buffers are kept between saves: fresh ones would page-fault the whole state in
  // again on every save (measured: ~200 ms for 40 MB on the dev VM, more than a sync save).
  if (!snapshot_) snapshot_ = std::make_unique<Snapshot>();
  snapshot_->state = state_json(steps_done);
  async_step_ = steps_done;
  writer_error_.clear();
  async_.store(AsyncSave::kCopying);
  auto work = [this, steps_done] {
    // The snapshot is copied here, while the training thread runs the next step's forward and
    // backward passes (which only read the parameters and optimizer state); the optimizer
    // update waits in before_update() until the copy is done. So the step boundary costs no
    // copy at all (it was most of the stall: 38 MB on the training thread).
    if (checkpoint::fault::armed("CONVEYOR_FAULT_SLOW_SNAPSHOT", steps_done, stage_))
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    try {
      copy_snapshot();
    } catch (const std::exception& e) {
      writer_error_ = fmt::format("taking the host snapshot failed: {}", e.what());
      async_.store(AsyncSave::kFailed);
      async_.notify_all();
      return;
    }
    async_.store(AsyncSave::kWriting);
    async_.notify_all();
    // Below the training threads: on a busy host the save should wait, not the step.
    setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10);
    try {
      const auto contents = shard_contents(steps_done, snapshot_->state, snapshot_->params.data(),
                                           snapshot_->exp_avg.data(), snapshot_->exp_avg_sq.data());
      const auto tmp = checkpoint::begin_step(config_.ckpt_dir, steps_done);
      checkpoint::write_shard(tmp, contents);
      async_.store(AsyncSave::kWritten);
    } catch (const std::exception& e) {
      writer_error_ = e.what();
      async_.store(AsyncSave::kFailed);
    }
  };
  try {
    writer_ = std::thread(work);
  } catch (...) {  // no thread: nothing will copy, so before_update() must not wait
    async_.store(AsyncSave::kIdle);
    async_step_ = -1;
    throw;
  }
}

void StageCheckpoint::before_update() {
  // No deadline needed: the writer leaves kCopying after a bounded memory copy, even when the
  // copy fails.
  async_.wait(AsyncSave::kCopying);
}

SaveProgress StageCheckpoint::progress() const {
  const AsyncSave state = async_.load();
  return {state == AsyncSave::kWritten ? 1 : 0, state == AsyncSave::kFailed ? 1 : 0};
}

void StageCheckpoint::on_progress(const SaveProgress& summed) {
  const AsyncSave state = async_.load();
  if (state == AsyncSave::kIdle || state == AsyncSave::kCommitting) return;
  if (summed.failed > 0) {
    if (writer_.joinable()) writer_.join();
    if (async_.load() == AsyncSave::kFailed) {
      CONVEYOR_LOG_ERROR("checkpoint: async save of step {} failed on this stage: {}", async_step_,
                         writer_error_);
    }
    if (coordinator()) {
      CONVEYOR_LOG_ERROR(
          "checkpoint: async save of step {} failed on {} stage(s); it was not "
          "committed (LATEST still names the previous checkpoint); training goes on",
          async_step_, summed.failed);
    }
    last_failed_step_ = async_step_;
    async_.store(AsyncSave::kIdle);
  } else if (summed.written == config_.stages) {
    if (writer_.joinable()) writer_.join();
    if (coordinator()) {
      // The commit (manifest, renames, directory fsyncs) runs off the training thread too;
      // the next save or finish() waits for it and reports its failure.
      const int64_t step = async_step_;
      async_.store(AsyncSave::kCommitting);
      writer_ = std::thread([this, step] {
        try {
          commit(step);
        } catch (const std::exception& e) {
          commit_error_ = fmt::format("committing checkpoint step {} failed: {}", step, e.what());
        }
      });
    } else {
      async_.store(AsyncSave::kIdle);
    }
  } else {
    return;  // still writing somewhere
  }
  async_step_ = -1;  // snapshot_ stays allocated for the next save
}

void StageCheckpoint::complete_async() {
  const AsyncSave state = async_.load();
  if (state == AsyncSave::kIdle || state == AsyncSave::kCommitting) return;
  if (writer_.joinable()) writer_.join();
  const SaveProgress mine = progress();
  if (transport_) {
    const double flat[2] = {double(mine.written), double(mine.failed)};
    auto summed = transport_->all_reduce_sum(std::span<const double>(flat, 2), deadline());
    on_progress({static_cast<int>(summed[0]), static_cast<int>(summed[1])});
  } else {
    on_progress(mine);
  }
}

void StageCheckpoint::join_commit() {
  if (async_.load() != AsyncSave::kCommitting) return;
  if (writer_.joinable()) writer_.join();
  async_.store(AsyncSave::kIdle);
  if (!commit_error_.empty()) {
    const std::string error = std::exchange(commit_error_, {});
    throw Error(ErrorKind::kRuntime, error);
  }
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
