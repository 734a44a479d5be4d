#include "train/stage_checkpoint.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
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
#include "train/shared_dir_check.h"
#include "transport/tag.h"
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

nlohmann::json data_identity(const std::string& path) {
  constexpr size_t kEdge = 64 * 1024;  // bytes hashed at each end of every file
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(),
                                                                 &XXH3_freeState);
  XXH3_64bits_reset(state.get());
  const auto files = data::Dataset::input_files(path);
  uint64_t total = 0;
  std::vector<char> buffer;
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    std::error_code ec;
    const uint64_t size = fs::file_size(file, ec);
    if (!in || ec) {
      throw Error(ErrorKind::kRuntime,
                  fmt::format("cannot read data file {}: {}", file.string(),
                              ec ? ec.message() : "open failed"),
                  "check that it exists and is readable");
    }
    const std::string name = file.filename().string();
    XXH3_64bits_update(state.get(), name.data(), name.size() + 1);  // with its NUL
    XXH3_64bits_update(state.get(), &size, sizeof size);
    // The head, and the tail where the file is longer than the head.
    for (const uint64_t offset :
         {uint64_t(0), size > kEdge ? std::max(kEdge, size - kEdge) : size}) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(kEdge, size - offset));
      if (n == 0) continue;
      buffer.resize(n);
      in.seekg(static_cast<std::streamoff>(offset));
      in.read(buffer.data(), static_cast<std::streamsize>(n));
      if (!in) {
        throw Error(ErrorKind::kRuntime, fmt::format("reading data file {} failed", file.string()),
                    "was the file changed while conveyor read it?");
      }
      XXH3_64bits_update(state.get(), buffer.data(), n);
    }
    total += size;
  }
  return {{"files", files.size()},
          {"bytes", total},
          {"xxh3", fmt::format("{:016x}", XXH3_64bits_digest(state.get()))}};
}

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
                                 transport::Transport* transport, std::vector<bool> writes)
    : config_(config),
      model_(model),
      topology_(topology),
      rank_(rank),
      stage_(topology.place(rank).stage),
      transport_(transport),
      writes_(std::move(writes)) {
  CONVEYOR_CHECK(writes_.empty() || writes_.size() == model.store().specs().size(),
                 "{} write flags for {} parameters", writes_.size(), model.store().specs().size());
}

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

namespace {

// "3 files, 20480 bytes, xxh3 0123456789abcdef"
std::string identity_text(const nlohmann::json& id) {
  if (!id.is_object()) return fmt::format("unrecognised identity {}", id.dump());
  return fmt::format("{} file(s), {} bytes, xxh3 {}", id.value("files", int64_t(-1)),
                     id.value("bytes", int64_t(-1)), id.value("xxh3", std::string("?")));
}

bool same_identity(const nlohmann::json& a, const nlohmann::json& b) {
  for (const char* key : {"files", "bytes", "xxh3"}) {
    if (!a.is_object() || !b.is_object() || !a.contains(key) || !b.contains(key) ||
        a[key] != b[key]) {
      return false;
    }
  }
  return true;
}

}  // namespace

void StageCheckpoint::check_same_data(const checkpoint::Manifest& m,
                                      const std::string& chosen) const {
  const nlohmann::json& saved = m.config;
  const nlohmann::json mine = config_.to_json();
  std::vector<std::string> changed, unknown;
  // The batches a step samples depend on these (and on --seq, a model field checked with the
  // model's shape): the micro-batch size and the global micro-batch count (--replicas x
  // --microbatches; a checkpoint from before data parallelism records only --microbatches,
  // with one replica). --stages, --replicas alone, --schedule and the rest may change.
  const nlohmann::json none;
  auto saved_value = [&](const char* key, const char* fallback) -> const nlohmann::json& {
    if (!saved.is_object()) return none;
    if (saved.contains(key)) return saved[key];
    return fallback && saved.contains(fallback) ? saved[fallback] : none;
  };
  struct Setting {
    const char *key, *fallback, *flag;
  };
  for (const Setting& s :
       {Setting{"micro_batch_size", nullptr, "--micro-batch-size"},
        Setting{"global_microbatches", "microbatches", "--replicas x --microbatches"}}) {
    const nlohmann::json& theirs = saved_value(s.key, s.fallback);
    if (theirs.is_null()) {
      unknown.push_back(s.flag);
    } else if (theirs != mine[s.key]) {
      changed.push_back(
          fmt::format("{} {} (the checkpoint's: {})", s.flag, mine[s.key].dump(), theirs.dump()));
    }
  }
  if (!saved.is_object() || !saved.contains(kDataIdentityKey)) {
    unknown.push_back("--data");
  } else if (!same_identity(saved[kDataIdentityKey], data_identity_)) {
    changed.push_back(fmt::format(
        "--data {}: {} (the checkpoint's: {}: {})", config_.data, identity_text(data_identity_),
        saved.is_object() && saved.contains("data") && saved["data"].is_string()
            ? saved["data"].get<std::string>()
            : std::string("?"),
        identity_text(saved[kDataIdentityKey])));
  }
  if (!unknown.empty()) {
    CONVEYOR_LOG_WARN(
        "checkpoint {} does not record {} (it was written by an older conveyor): cannot check "
        "that this run continues it with the same",
        chosen, fmt::join(unknown, ", "));
  }
  if (changed.empty()) return;
  if (config_.allow_data_change) {
    CONVEYOR_LOG_WARN(
        "resuming from {} with {}, as --allow-data-change allows: the continuation will not "
        "match an uninterrupted run",
        chosen, fmt::join(changed, "; "));
    return;
  }
  throw Error(ErrorKind::kUsage,
              fmt::format("checkpoint {} was trained on other data or batches: this run has {}",
                          chosen, fmt::join(changed, "; ")),
              "resume with the checkpoint's settings, start afresh (--resume none or another "
              "--ckpt-dir), or pass --allow-data-change to continue with these");
}

int64_t StageCheckpoint::restore() {
  std::string chosen;  // step directory to load, agreed by every stage
  const std::string mode = config_.resume.empty() ? (enabled() ? "auto" : "none") : config_.resume;
  if (coordinator()) {
    if (enabled()) {
      open_directory();
      data_identity_ = data_identity(config_.data);  // recorded by every commit
    }
    chosen = choose_step(mode);
    if (!chosen.empty()) {
      if (data_identity_.is_null()) data_identity_ = data_identity(config_.data);
      check_same_data(checkpoint::read_manifest(chosen), chosen);
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
  // A run continues the chosen step's timeline: the steps after it are another's.
  auto abandon_newer = [&](int64_t steps_done) {
    if (coordinator() && enabled())
      checkpoint::move_aside_steps_after(config_.ckpt_dir, steps_done);
  };
  if (chosen.empty()) {
    abandon_newer(0);
    return 0;
  }

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
  if (coordinator()) {
    const nlohmann::json run = config_.to_json();
    for (const auto& [key, flag] : {std::pair{"seed", "--seed"}, std::pair{"steps", "--steps"}}) {
      if (saved.contains(key) && saved[key] != run[key]) {
        CONVEYOR_LOG_WARN(
            "resuming with {} {} where checkpoint {} has {}: the continuation will not match "
            "an uninterrupted run",
            flag, run[key].dump(), chosen, saved[key].dump());
      }
    }
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
    const int64_t saved_stages = saved_count("stages", reader.manifest().num_stages);
    CONVEYOR_LOG_INFO("resumed from {} (step {}, saved by {}{} stage(s))", chosen, steps_done,
                      saved_replicas > 1 ? fmt::format("{} replica(s) x ", saved_replicas) : "",
                      saved_stages);
  }
  abandon_newer(steps_done);
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
  contents.stage = rank_;
  contents.num_stages = topology_.world_size();
  contents.state = std::move(state);
  for (size_t i = 0; i < store.specs().size(); ++i) {
    const int idx = static_cast<int>(i);
    if (!writes_.empty() && !writes_[i]) continue;
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
  } else if (summed.written == topology_.world_size()) {
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
