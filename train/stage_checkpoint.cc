#include "train/stage_checkpoint.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <limits>
#include <utility>

#include "checkpoint/checkpoint.h"
#include "checkpoint/fault_injection.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/json_number.h"
#include "common/log.h"
#include "common/printable.h"
#include "data/dataset.h"
#include "model/param_table.h"
#include "train/data_identity.h"
#include "train/resume_policy.h"
#include "train/shared_dir_check.h"
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

std::map<std::string, std::vector<int64_t>> saved_model_params(const checkpoint::Manifest& m) {
  std::map<std::string, std::vector<int64_t>> params;
  if (!m.config.is_object() || !m.config.contains("model")) return params;
  model::ModelConfig saved;
  try {
    saved = model::ModelConfig::from_json(m.config.at("model"));
    saved.validate();
  } catch (const std::exception& e) {
    throw Error(ErrorKind::kUsage,
                fmt::format("the model configuration in the manifest of step {} is malformed: {}",
                            m.step, e.what()),
                "the checkpoint is damaged; resume from an older step or restore it");
  }
  for (const auto& spec : model::parameter_table(saved)) params.emplace(spec.name, spec.shape);
  return params;
}

// Host copies of the store's buffers, taken at a step boundary for an async save.
struct StageCheckpoint::Snapshot {
  std::vector<float> params, exp_avg, exp_avg_sq;
  nlohmann::json state;
};

StageCheckpoint::StageCheckpoint(const TrainConfig& config, model::StageModel& model,
                                 const Topology& topology, int rank,
                                 transport::Transport* transport, std::vector<bool> owned)
    : config_(config),
      model_(model),
      topology_(topology),
      rank_(rank),
      stage_(topology.place(rank).stage),
      transport_(transport),
      owned_(std::move(owned)) {
  CONVEYOR_CHECK(owned_.empty() || owned_.size() == model.store().specs().size(),
                 "{} write flags for {} parameters", owned_.size(), model.store().specs().size());
}

StageCheckpoint::~StageCheckpoint() = default;

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

void StageCheckpoint::open_directory() {
  // Before anything reads or writes the directory: refuse now a directory no save could be
  // committed to (not after the last step), and keep every other job out of it.
  lock_ = checkpoint::DirLock::acquire(config_.ckpt_dir);
  const fs::path latest = fs::path(config_.ckpt_dir) / checkpoint::kLatestFile;
  std::error_code ec;
  const auto status = fs::status(latest, ec);
  CONVEYOR_REQUIRE(!fs::exists(status) || fs::is_regular_file(status),
                   "{} is not a regular file (a folder, FIFO or device): it is where the "
                   "checkpoint directory names its newest step, and no commit could replace it; "
                   "remove or rename it",
                   latest.string());
  const int removed = checkpoint::remove_stale_temp_dirs(config_.ckpt_dir);
  if (removed > 0) {
    CONVEYOR_LOG_INFO("removed {} unfinished checkpoint director{} in {}", removed,
                      removed == 1 ? "y" : "ies", config_.ckpt_dir);
  }
}

std::string StageCheckpoint::choose_step(const std::string& mode) const {
  if (mode == "auto") {
    CONVEYOR_REQUIRE(enabled(), "--resume auto needs --ckpt-dir to say where to look");
    if (auto latest = checkpoint::find_latest(config_.ckpt_dir, checkpoint::VerifyLevel::kFull,
                                              saved_model_params)) {
      return latest->string();
    }
    if (fs::is_directory(config_.ckpt_dir)) {
      // Committed steps that all fail verification: starting over would silently throw the
      // run away and then commit steps that look like its continuation.
      for (const auto& entry : fs::directory_iterator(config_.ckpt_dir)) {
        const std::string name = entry.path().filename().string();
        CONVEYOR_REQUIRE(!(entry.is_directory() && checkpoint::parse_step_dir_name(name)),
                         "--ckpt-dir {} holds committed checkpoints but none of them verifies "
                         "(see the warnings above); repair or remove them, pick one with "
                         "--resume PATH, or start over with --resume none",
                         config_.ckpt_dir);
      }
    }
    return {};
  }
  if (mode == "none") return {};
  CONVEYOR_REQUIRE(fs::exists(mode), "--resume {}: no such file or directory", mode);
  fs::path dir = checkpoint::resolve_step_dir(mode);
  checkpoint::verify(dir, checkpoint::VerifyLevel::kFull, saved_model_params);
  return dir.string();
}

int64_t StageCheckpoint::restore() {
  std::string chosen;  // step directory to load, agreed by every stage
  if (coordinator()) {
    if (enabled()) {
      open_directory();
      data_identity_ = data_identity(config_.data);  // recorded by every commit
    }
    chosen = choose_step(resume_mode(config_));
    if (!chosen.empty()) {
      if (data_identity_.is_null()) data_identity_ = data_identity(config_.data);
      const ResumeVerdict verdict = judge_continuation(checkpoint::read_manifest(chosen).config,
                                                       config_, data_identity_, chosen);
      for (const std::string& warning : verdict.warnings) CONVEYOR_LOG_WARN("{}", warning);
      if (verdict.refusal) throw *verdict.refusal;
    }
  }
  if (transport_) {
    auto bytes = to_bytes(chosen);
    transport_->broadcast(bytes, topology_.coordinator_rank(), deadline());
    chosen = from_bytes(bytes);
    if (enabled())
      require_shared_directory(config_.ckpt_dir, *transport_, topology_.coordinator_rank(),
                               deadline());
  }
  const int64_t steps_done = chosen.empty() ? 0 : load(chosen);
  // A run continues the chosen step's timeline: the steps after it are another's.
  if (coordinator() && enabled()) checkpoint::move_aside_steps_after(config_.ckpt_dir, steps_done);
  return steps_done;
}

int64_t StageCheckpoint::load(const std::string& chosen) {
  checkpoint::CheckpointReader reader(chosen);
  const auto& saved = reader.manifest().config;
  require_same_model(saved, config_, chosen);
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
    if (!store.has_moments(idx)) continue;  // ZeRO-1: another replica keeps them
    load(checkpoint::kExpAvg, spec.name, store.exp_avg(idx));
    load(checkpoint::kExpAvgSq, spec.name, store.exp_avg_sq(idx));
  }
  k.synchronize();
  const int64_t steps_done = json_integer(reader.state().at("step"), "the checkpoint's step", 0,
                                          std::numeric_limits<int64_t>::max(), "steps");
  if (coordinator()) {
    // The grid that saved it (a checkpoint from before data parallelism has one replica).
    auto saved_count = [&](const char* key, int64_t fallback) {
      return saved.contains(key) ? json_integer(saved[key], fmt::format("manifest field {}", key),
                                                1, transport::kMaxRanks, "ranks")
                                 : fallback;
    };
    const int64_t saved_replicas = saved_count("replicas", 1);
    // Before data parallelism there was one shard per stage.
    const int64_t saved_stages = saved_count("stages", reader.manifest().num_shards);
    CONVEYOR_LOG_INFO("resumed from {} (step {}, saved by {}{} stage(s))", chosen, steps_done,
                      saved_replicas > 1 ? fmt::format("{} replica(s) x ", saved_replicas) : "",
                      saved_stages);
  }
  return steps_done;
}

void StageCheckpoint::commit(int64_t steps_done) {
  if (coordinator()) {
    nlohmann::json config = config_.to_json();
    if (!data_identity_.is_null()) config[kDataIdentityKey] = data_identity_;
    if (!config_.settings_toml.empty()) config[kSettingsKey] = utf8_text(config_.settings_toml);
    checkpoint::commit_step(config_.ckpt_dir, steps_done, topology_.world_size(), config,
                            fingerprint_of(config_.model.to_json()), config_.keep);
  }
}

checkpoint::ShardContents StageCheckpoint::shard_contents(int64_t steps_done, nlohmann::json state,
                                                          const float* params, const float* exp_avg,
                                                          const float* exp_avg_sq) const {
  const auto& store = model_.store();
  checkpoint::ShardContents contents;
  contents.step = steps_done;
  // One shard per rank (== per stage with one replica); each parameter in the shard of the
  // replica that owns it (gradient_buckets.h), so it is written once per stage holding it.
  contents.shard = rank_;
  contents.num_shards = topology_.world_size();
  contents.state = std::move(state);
  for (size_t i = 0; i < store.specs().size(); ++i) {
    const int idx = static_cast<int>(i);
    if (!owned_.empty() && !owned_[i]) continue;
    const auto& spec = store.specs()[i];
    CONVEYOR_CHECK(store.has_moments(idx), "rank {} writes {} but keeps no moments for it", rank_,
                   spec.name);
    const size_t off = store.offset(idx), moments = store.moment_offset(idx);
    contents.params.push_back({spec.name, spec.shape, params + off});
    contents.exp_avg.push_back({spec.name, spec.shape, exp_avg + moments});
    contents.exp_avg_sq.push_back({spec.name, spec.shape, exp_avg_sq + moments});
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
  async_.join_commit();
  if (!snapshot_) snapshot_ = std::make_unique<Snapshot>();
  snapshot_->state = state_json(steps_done);
  AsyncSaver::Work work;
  work.copy_snapshot = [this, steps_done] {
    model_.backend().bind_thread();  // runs on the saver's thread
    if (checkpoint::fault::armed("CONVEYOR_FAULT_SLOW_SNAPSHOT", steps_done, stage_))
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    copy_snapshot();
  };
  work.write_shard = [this, steps_done] {
    const auto contents = shard_contents(steps_done, snapshot_->state, snapshot_->params.data(),
                                         snapshot_->exp_avg.data(), snapshot_->exp_avg_sq.data());
    checkpoint::write_shard(checkpoint::begin_step(config_.ckpt_dir, steps_done), contents);
  };
  async_.start(steps_done, std::move(work));
}

void StageCheckpoint::before_update() {
  async_.before_update();
}

SaveProgress StageCheckpoint::progress() const {
  return async_.progress();
}

void StageCheckpoint::on_progress(const SaveProgress& summed) {
  std::function<void(int64_t)> commit_step;
  if (coordinator()) commit_step = [this](int64_t step) { commit(step); };
  async_.on_progress(summed, topology_.world_size(), std::move(commit_step));
}

void StageCheckpoint::complete_async() {
  if (!async_.in_flight()) return;
  const SaveProgress mine = async_.wait_for_write();
  if (transport_) {
    const double flat[2] = {double(mine.written), double(mine.failed)};
    auto summed = transport_->all_reduce_sum(std::span<const double>(flat, 2), deadline());
    on_progress({static_cast<int>(summed[0]), static_cast<int>(summed[1])});
  } else {
    on_progress(mine);
  }
}

void StageCheckpoint::finish() {
  async_.take_failed_step();  // reported when it failed; only the last save's failure throws
  complete_async();
  async_.join_commit();
  // The last save of a run must not be lost silently: a failed sync save throws too.
  if (const int64_t failed = async_.take_failed_step(); failed >= 0) {
    throw Error(ErrorKind::kRuntime,
                fmt::format("the final checkpoint (step {}) could not be written; LATEST names "
                            "the previous one",
                            failed),
                "see the errors above for the cause (disk full? permissions?)");
  }
}

}  // namespace conveyor::pipeline
