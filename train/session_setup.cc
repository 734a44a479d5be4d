#include "train/session_setup.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <fmt/ranges.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/host_memory.h"
#include "common/launch_env.h"
#include "common/log.h"
#include "common/output_path.h"
#include "data/sampler.h"
#include "interop/weight_source.h"
#include "pipeline/parallel/gradient_sync.h"
#include "pipeline/runtime/trace.h"

namespace conveyor::pipeline {

TrainConfig with_replicas_resolved(const TrainConfig& given, const transport::Options& launched) {
  TrainConfig c = given;
  const int world = launched.world_size;
  if (c.replicas == 0) {
    CONVEYOR_REQUIRE(world % c.stages == 0,
                     "{} is {} but --stages is {}: a job is --replicas x --stages processes; "
                     "start one process per stage and replica, e.g. conveyor launch --nproc {} "
                     "-- conveyor train --stages {} ...",
                     launched.world_size_from, world, c.stages, c.stages, c.stages);
    c.replicas = world / c.stages;
  }
  CONVEYOR_REQUIRE(world == c.replicas * c.stages,
                   "{} is {} but --replicas {} x --stages {} is {}; start that many processes, "
                   "e.g. conveyor launch --nproc {} -- conveyor train --stages {} --replicas {} "
                   "...",
                   launched.world_size_from, world, c.replicas, c.stages, c.replicas * c.stages,
                   c.replicas * c.stages, c.stages, c.replicas);
  c.validate();  // the global batch is known now
  return c;
}

void require_outputs_writable(const TrainConfig& config) {
  if (!config.trace.empty())
    require_writable_output(config.trace, "--trace", OutputKind::kReplaced);
  if (!config.metrics.empty())
    require_writable_output(config.metrics, "--metrics", OutputKind::kAppended);
  if (!config.metrics.empty() && !config.trace.empty()) {
    std::vector<std::pair<std::string, std::string>> traces = {{"--trace", config.trace}};
    for (int r = 0; r < config.stages * config.replica_count(); ++r)
      traces.emplace_back(fmt::format("the rank {} part of --trace", r),
                          trace_part_path(config.trace, r));
    require_distinct_output("--metrics", config.metrics, traces);
  }
}

std::vector<model::ChunkSpec> my_chunks(const TrainConfig& c, const Topology& topology, int stage) {
  const int pieces = topology.num_virtual_stages();
  auto all = model::chunk_specs(model::resolve_partition(c.partition, c.model, pieces));
  std::vector<model::ChunkSpec> mine;
  for (int v = 0; v < topology.virtual_stages; ++v)
    mine.push_back(all[topology.virtual_stage(stage, v)]);
  return mine;
}

int kernel_threads(const TrainConfig& c) {
  if (c.threads > 0) return c.threads;
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  return std::max(1, cores / (c.stages * c.replica_count()));
}

BucketPlan plan_stage_buckets(const TrainConfig& c, const std::vector<model::ChunkSpec>& chunks,
                              const Schedule& schedule, int stage) {
  const auto params = model::stage_parameters(c.model, chunks);
  std::vector<int> chunk_of;
  for (const auto& p : params) chunk_of.push_back(model::chunk_of_parameter(p, chunks));
  const auto bucket_elements = static_cast<size_t>(
      std::max(1.0, std::floor(c.bucket_mb * double(1 << 20) / double(sizeof(float)))));
  return plan_buckets(params, chunk_of, gradient_completion_order(schedule, stage), bucket_elements,
                      c.replica_count());
}

void require_memory_fits(const TrainConfig& c, const std::vector<model::ChunkSpec>& chunks,
                         int inflight, const std::vector<bool>& moments_kept, int rank,
                         const Topology& topology, const kernels::Gpu* gpu) {
  const auto need = model::StageModel::estimate_memory(c.model, chunks, c.micro_batch_size,
                                                       inflight + 1, moments_kept);
  const std::string breakdown = fmt::format(
      "weights {}, gradients {}, AdamW moments {}{}, activations of {} micro-batches {}, "
      "scratch {}",
      human_bytes_binary(need.parameters), human_bytes_binary(need.gradients),
      human_bytes_binary(need.optimizer), c.zero == 1 ? " (ZeRO-1: this replica's share)" : "",
      inflight + 1, human_bytes_binary(need.activations), human_bytes_binary(need.scratch));
  const auto place = topology.place(rank);
  if (place.replica == 0 || c.zero == 1)
    CONVEYOR_LOG_INFO("stage {} replica {} memory: about {} ({})", place.stage, place.replica,
                      human_bytes_binary(need.total()), breakdown);
  if (gpu != nullptr) {
    if (need.total() <= double(gpu->memory_bytes)) return;
    throw Error(ErrorKind::kUsage,
                fmt::format("this stage needs about {} of GPU memory ({}) but GPU {} ({}) has {}",
                            human_bytes_binary(need.total()), breakdown, gpu->index, gpu->name,
                            human_bytes_binary(double(gpu->memory_bytes))),
                "use a smaller model (--dim, --layers, --seq), a smaller --micro-batch-size, or "
                "more --stages");
  }
  const auto available = available_memory_bytes();
  if (!available || need.total() <= *available) return;
  throw Error(
      ErrorKind::kUsage,
      fmt::format("this stage needs about {} of memory ({}) but this host has {} "
                  "available",
                  human_bytes_binary(need.total()), breakdown, human_bytes_binary(*available)),
      "use a smaller model (--dim, --layers, --seq), a smaller --micro-batch-size, or "
      "more --stages");
}

int restart_count_from_env() {
  const char* text = std::getenv(kEnvRestartCount);
  if (text == nullptr || *text == '\0') return 0;
  char* end = nullptr;
  const long n = std::strtol(text, &end, 10);
  CONVEYOR_REQUIRE(*end == '\0' && n >= 0 && n <= 1000000,
                   "environment variable {}='{}' is not a count", kEnvRestartCount, text);
  return static_cast<int>(n);
}

void load_initial_weights(const TrainConfig& config, model::StageModel& model) {
  auto source = interop::WeightSource::open(config.init_from);
  interop::require_same_model(*source, config.model);
  auto& store = model.store();
  std::vector<float> host;
  for (size_t i = 0; i < store.specs().size(); ++i) {
    const auto& spec = store.specs()[i];
    host.resize(spec.numel());
    source->read(spec.name, host);
    model.backend().from_host(store.param(static_cast<int>(i)).data(), host.data(),
                              host.size() * sizeof(float));
  }
  model.backend().synchronize();
  CONVEYOR_LOG_INFO("initial weights from {}", source->describe());
}

std::optional<data::Dataset> open_training_data(const TrainConfig& config,
                                                const model::StageModel& model, bool log) {
  if (!model.holds_embedding() && !model.holds_head()) return std::nullopt;
  auto dataset = data::Dataset::open(config.data, config.model.vocab);
  CONVEYOR_REQUIRE(dataset.size() > size_t(config.model.seq),
                   "--seq {} is larger than the data ({} tokens in {}); use a smaller --seq or "
                   "more data",
                   config.model.seq, dataset.size(), config.data);
  if (log) CONVEYOR_LOG_INFO("data: {}", dataset.description());
  return dataset;
}

ValidationData open_validation_data(const TrainConfig& config, const model::StageModel& model,
                                    const Topology& topology, transport::Transport* transport,
                                    bool log) {
  ValidationData v;
  if (config.val_data.empty()) return v;
  if (model.holds_embedding() || model.holds_head()) {
    v.data = data::Dataset::open(config.val_data, config.model.vocab, {.split = data::Split::kVal});
    const int64_t available = int64_t(data::num_eval_windows(*v.data, config.model.seq));
    CONVEYOR_REQUIRE(available > 0,
                     "--val-data {} has {} tokens, fewer than one window of --seq {} + 1; use "
                     "more validation data or a smaller --seq",
                     config.val_data, v.data->size(), config.model.seq);
    v.windows = config.val_windows > 0 ? std::min(config.val_windows, available) : available;
    if (log) CONVEYOR_LOG_INFO("validation data: {}", v.data->description());
  }
  if (transport) {
    std::vector<uint8_t> bytes(sizeof v.windows);
    std::memcpy(bytes.data(), &v.windows, sizeof v.windows);
    transport->broadcast(bytes, topology.reporter_rank(),
                         Deadline::after_seconds(kPeerWaitSeconds));
    std::memcpy(&v.windows, bytes.data(), sizeof v.windows);
  }
  return v;
}

void log_run(const TrainConfig& config, const Topology& topology, const std::string& device) {
  CONVEYOR_LOG_INFO("model: {} layers, d={}, {} heads, T={}, V={}: {:.2f}M parameters",
                    config.model.layers, config.model.dim, config.model.heads, config.model.seq,
                    config.model.vocab, config.model.num_parameters() / 1e6);
  const std::vector<int> layers =
      model::resolve_partition(config.partition, config.model, topology.num_virtual_stages());
  CONVEYOR_LOG_INFO(
      "pipeline: {} stage(s), schedule {}, {} micro-batches of {} sequences; layers per piece "
      "{} ({}); device {}",
      config.stages, config.schedule, config.microbatches, config.micro_batch_size,
      fmt::join(layers, ","),
      config.partition.empty()     ? "layer-balanced"
      : config.partition == "auto" ? "--partition auto: cost-balanced"
                                   : "--partition",
      device);
  if (topology.replicas > 1)
    CONVEYOR_LOG_INFO(
        "data parallel: {}; global batch {} micro-batches; {}; buckets of {} MiB, "
        "overlap {}",
        topology.describe(), config.global_microbatches(),
        config.zero == 1 ? "ZeRO-1 (AdamW moments sharded)" : "no ZeRO", config.bucket_mb,
        config.overlap);
}

}  // namespace conveyor::pipeline
