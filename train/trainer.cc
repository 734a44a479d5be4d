#include "train/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <thread>

#include "checkpoint/fault_injection.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/host_memory.h"
#include "common/log.h"
#include "common/output_path.h"
#include "data/dataset.h"
#include "data/sampler.h"
#include "data/tokenizer.h"
#include "interop/weight_source.h"
#include "kernels/backend.h"
#include "kernels/device.h"
#include "model/stage_model.h"
#include "pipeline/runtime/device_transport.h"
#include "pipeline/runtime/executor.h"
#include "infer/generate.h"
#include "pipeline/parallel/gradient_buckets.h"
#include "pipeline/parallel/gradient_sync.h"
#include "pipeline/runtime/message_tag.h"
#include "train/metrics.h"
#include "pipeline/schedule/schedule.h"
#include "pipeline/schedule/schedule_validator.h"
#include "train/stage_checkpoint.h"
#include "pipeline/parallel/step_reduction.h"
#include "pipeline/runtime/stop_request.h"
#include "pipeline/schedule/topology.h"
#include "pipeline/runtime/trace.h"
#include "pipeline/runtime/trace_merge.h"
#include "train/validation.h"
#include "transport/transport.h"

namespace conveyor::pipeline {

namespace {

Deadline peer_deadline() {
  return Deadline::after_seconds(kPeerWaitSeconds);
}

// This stage's pieces of the model, in chunk order.
std::vector<model::ChunkSpec> my_chunks(const TrainConfig& c, const Topology& topology, int stage) {
  const int pieces = topology.num_virtual_stages();
  auto counts = c.partition.empty() ? model::default_partition(c.model.layers, pieces)
                                    : model::parse_partition(c.partition, c.model.layers, pieces);
  auto all = model::chunk_specs(counts);
  std::vector<model::ChunkSpec> mine;
  for (int v = 0; v < topology.virtual_stages; ++v)
    mine.push_back(all[topology.virtual_stage(stage, v)]);
  return mine;
}

// Kernel threads per process: --threads, else this host's cores shared by the stages.
int kernel_threads(const TrainConfig& c) {
  if (c.threads > 0) return c.threads;
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  return std::max(1, cores / (c.stages * c.replica_count()));
}

// Sums the embedding's and the head's wte gradients, in that order, on every stage that holds
// a copy of wte, so both copies get the same bits whatever the partition. `other` is scratch
// for the peer's gradient (allocated once, by the caller).
void tie_embedding_gradients(model::StageModel& m, transport::Transport* t,
                             const Topology& topology, int rank, int64_t step,
                             kernels::Buffer<float>& other) {
  if (!m.holds_embedding() && !m.holds_head()) return;
  kernels::Backend& k = m.backend();
  float* wte_grad = m.store().grad(model::kWteWeight);
  const size_t n = size_t(m.config().vocab) * m.config().dim;
  if (m.holds_embedding() && m.holds_head()) {
    k.add_inplace(wte_grad, m.head_wte_grad().data(), n);
    return;
  }
  const int replica = topology.place(rank).replica;
  const int peer = m.holds_embedding() ? topology.rank(replica, topology.head_stage())
                                       : topology.rank(replica, topology.embedding_stage());
  const transport::Tag tag = encode(MessageTag{MessageKind::kTiedGradient, step, 0, 0});
  const float* mine = m.holds_embedding() ? wte_grad : m.head_wte_grad().data();
  k.synchronize();  // the gradient is complete before the transport reads it
  auto deadline = peer_deadline();
  auto recv = t->irecv(peer, tag, other.data(), n * sizeof(float), nullptr, k.memory_type());
  auto send = t->isend(peer, tag, mine, n * sizeof(float), nullptr, k.memory_type());
  t->wait(send, deadline);
  t->wait(recv, deadline);
  if (m.holds_embedding()) {
    k.add_inplace(wte_grad, other.data(), n);  // embedding + head
  } else {
    k.copy(wte_grad, other.data(), n * sizeof(float));     // embedding
    k.add_inplace(wte_grad, m.head_wte_grad().data(), n);  // + head
  }
}

// Idle time / step time on the worst stage. Every stage starts the step together (right
// after the previous step's all-reduce), so the step time is the slowest stage's schedule
// time; a stage that finishes early and waits for the others is idle too.
double worst_bubble(std::span<const double> schedule_seconds, std::span<const double> busy) {
  if (schedule_seconds.size() < 2) return 0.0;
  const double step = *std::max_element(schedule_seconds.begin(), schedule_seconds.end());
  if (step <= 0) return 0.0;
  double worst = 0;
  for (double b : busy) worst = std::max(worst, 1.0 - b / step);
  return worst;
}

// The configuration with --replicas resolved from the world size (0: world / --stages), after
// checking that the world is --replicas x --stages processes.
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

// This stage's gradient buckets (gradient_buckets.h), in the order the schedule finishes them.
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

// Logs what this stage will hold, and refuses (exit 2) a stage whose model, optimizer state
// (the moments this replica keeps: a 1/replicas share with ZeRO-1) and activations at the
// schedule's peak (`inflight` micro-batches, plus the receive posted ahead) do not fit in the
// memory this host has available, or with --device cuda in the memory of this rank's GPU
// (`gpu`; its total: ranks sharing the GPU are not added up).
void require_memory_fits(const TrainConfig& c, const std::vector<model::ChunkSpec>& chunks,
                         int inflight, const std::vector<bool>& with_moments, int rank,
                         const Topology& topology, const kernels::Gpu* gpu) {
  const auto need = model::StageModel::estimate_memory(c.model, chunks, c.micro_batch_size,
                                                       inflight + 1, with_moments);
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

// "1 micro-batch", "4 micro-batches"
std::string plural(int64_t n, const char* one, const char* many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

// Stops the run before a non-finite loss or gradient norm reaches the weights (every rank
// sees the same reduced numbers, so every rank stops at the same step).
void require_finite(double loss, double norm, int64_t step) {
  if (std::isfinite(loss) && std::isfinite(norm)) return;
  throw Error(ErrorKind::kRuntime,
              fmt::format("step {}: the {} is {} ; training stopped before the update, and no "
                          "checkpoint of this step was written",
                          step + 1, std::isfinite(loss) ? "gradient norm" : "loss",
                          std::isfinite(loss) ? norm : loss),
              "lower --lr, keep --grad-clip on, or resume from the last checkpoint");
}

// How many times `conveyor launch --max-restarts` restarted the job before this attempt.
int restart_count_from_env() {
  const char* text = std::getenv("CONVEYOR_RESTART_COUNT");
  if (text == nullptr || *text == '\0') return 0;
  char* end = nullptr;
  const long n = std::strtol(text, &end, 10);
  CONVEYOR_REQUIRE(*end == '\0' && n >= 0 && n <= 1000000,
                   "environment variable CONVEYOR_RESTART_COUNT='{}' is not a count", text);
  return static_cast<int>(n);
}

// --init-from: this stage's parameters from an outside model of the same shape.
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

}  // namespace

TrainSummary train(const TrainConfig& given, const TrainHooks& hooks) {
  install_stop_handlers();
  given.validate();
  // Read even for one stage: two processes started for a one-stage job would each train it.
  transport::Options launched = transport::options_from_env("");
  const TrainConfig config = with_replicas_resolved(given, launched);
  launched.fingerprint = config.fingerprint();
  // Outputs written at the end must fail now, not after the last step.
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
  const ScheduleKind kind = parse_schedule_kind(config.schedule);
  const Schedule schedule =
      make_schedule(kind, config.stages, config.microbatches, config.virtual_stages);
  validate_schedule(schedule);  // throws with the grid when the schedule is broken
  const Topology topology = Topology::make(config.replicas, config.stages, config.virtual_stages,
                                           parse_rank_order(config.layout));

  // With --device cuda, this rank's GPU (kernels/device.h): --gpu, else its local rank's as the
  // launch resolved it. Before any peer is waited for: no GPU refuses the run at once.
  const kernels::DeviceKind device = kernels::parse_device_kind(config.device);
  std::optional<kernels::Gpu> gpu;
  if (device == kernels::DeviceKind::kCuda)
    gpu = kernels::choose_rank_gpu(config.gpu, launched.local_rank);

  std::unique_ptr<transport::Transport> transport;
  std::optional<transport::Options> options;
  int rank = 0;
  if (topology.world_size() > 1) {
    options = launched;
    if (gpu) options->gpu_numa_node = gpu->numa_node;  // the NIC nearest the GPU
    rank = options->rank;
    log::init(rank, topology.place(rank).stage);
  } else {
    log::init();
  }
  const int stage = topology.place(rank).stage;
  const int replica = topology.place(rank).replica;
  const auto chunks = my_chunks(config, topology, stage);
  BucketPlan buckets = plan_stage_buckets(config, chunks, schedule, stage);
  // ZeRO-1: this replica keeps the moments of the parameters it owns only.
  std::vector<bool> with_moments;
  if (config.zero == 1) with_moments = GradientSync::owned_mask(buckets, replica);
  // Before any peer is waited for: a stage that cannot fit refuses the run at once.
  require_memory_fits(config, chunks, schedule.max_inflight(stage), with_moments, rank, topology,
                      gpu ? &*gpu : nullptr);
  if (options) {
    transport = transport::Transport::create(*options);
    transport->set_tag_describer(describe_message);
  }
  const bool coordinator = rank == topology.coordinator_rank();
  auto backend = kernels::make_backend({device, kernel_threads(config), gpu ? gpu->index : 0});
  // Device tensors go through pinned host memory where UCX cannot reach the GPU.
  transport = transport_for_backend(std::move(transport), *backend);

  model::StageModel model(*backend, config.model, chunks, config.micro_batch_size, with_moments);
  model.store().initialize(config.seed);
  StageCheckpoint checkpoint(config, model, topology, rank, transport.get(),
                             GradientSync::owned_mask(buckets, replica));
  // Before training: a --tokenizer that cannot decode this model's ids fails now.
  std::optional<data::Tokenizer> tokenizer;
  if (!config.tokenizer.empty()) {
    tokenizer = data::Tokenizer::load(config.tokenizer);
    CONVEYOR_REQUIRE(tokenizer->vocab_size() <= config.model.vocab,
                     "--tokenizer {} has {} tokens but --vocab is {}; use --vocab {} (or more)",
                     config.tokenizer, tokenizer->vocab_size(), config.model.vocab,
                     tokenizer->vocab_size());
  }
  const int64_t start_step = checkpoint.restore();
  if (!config.init_from.empty()) {
    if (start_step > 0) {
      if (rank == topology.coordinator_rank())
        CONVEYOR_LOG_INFO("--init-from {} not used: resuming from step {} of --ckpt-dir",
                          config.init_from, start_step);
    } else {
      load_initial_weights(config, model);
    }
  }
  const bool reporter = model.holds_head() && topology.place(rank).replica == 0;
  const int restarts = restart_count_from_env();

  // Only the stages that read tokens or targets need the data.
  std::optional<data::Dataset> dataset;
  if (model.holds_embedding() || model.holds_head()) {
    dataset = data::Dataset::open(config.data, config.model.vocab);
    // Fail now, not at the first step, when the data is shorter than one window.
    CONVEYOR_REQUIRE(dataset->size() > size_t(config.model.seq),
                     "--seq {} is larger than the data ({} tokens in {}); use a smaller --seq or "
                     "more data",
                     config.model.seq, dataset->size(), config.data);
    if (coordinator) CONVEYOR_LOG_INFO("data: {}", dataset->description());
  }
  if (coordinator) {
    CONVEYOR_LOG_INFO("model: {} layers, d={}, {} heads, T={}, V={}: {:.2f}M parameters",
                      config.model.layers, config.model.dim, config.model.heads, config.model.seq,
                      config.model.vocab, config.model.num_parameters() / 1e6);
    CONVEYOR_LOG_INFO(
        "pipeline: {} stage(s), schedule {}, {} micro-batches of {} sequences; "
        "device {}",
        config.stages, config.schedule, config.microbatches, config.micro_batch_size,
        backend->describe());
    if (topology.replicas > 1)
      CONVEYOR_LOG_INFO(
          "data parallel: {}; global batch {} micro-batches; {}; buckets of {} MiB, "
          "overlap {}",
          topology.describe(), config.global_microbatches(),
          config.zero == 1 ? "ZeRO-1 (AdamW moments sharded)" : "no ZeRO", config.bucket_mb,
          config.overlap);
  }

  std::unique_ptr<MetricsWriter> metrics;
  if (reporter && !config.metrics.empty())
    metrics = std::make_unique<MetricsWriter>(
        config.metrics,
        start_step > 0 || restarts > 0 ? std::optional<int64_t>(start_step) : std::nullopt);
  // Validation data: on the stages that read tokens or targets, like the training data.
  std::optional<data::Dataset> val;
  int64_t val_windows = 0;
  if (!config.val_data.empty()) {
    if (model.holds_embedding() || model.holds_head()) {
      val = data::Dataset::open(config.val_data, config.model.vocab, {.split = data::Split::kVal});
      const int64_t available = int64_t(data::num_eval_windows(*val, config.model.seq));
      CONVEYOR_REQUIRE(available > 0,
                       "--val-data {} has {} tokens, fewer than one window of --seq {} + 1; use "
                       "more validation data or a smaller --seq",
                       config.val_data, val->size(), config.model.seq);
      val_windows = config.val_windows > 0 ? std::min(config.val_windows, available) : available;
      if (coordinator) CONVEYOR_LOG_INFO("validation data: {}", val->description());
    }
    if (transport) {  // a stage without the data learns the window count from the head's
      std::vector<uint8_t> bytes(sizeof val_windows);
      std::memcpy(bytes.data(), &val_windows, sizeof val_windows);
      transport->broadcast(bytes, topology.reporter_rank(), peer_deadline());
      std::memcpy(&val_windows, bytes.data(), sizeof val_windows);
    }
  }
  const PipelinePlace place{topology, rank, transport.get()};
  const double started = now_seconds();

  GradientSyncOptions sync_options;
  sync_options.zero1 = config.zero == 1;
  sync_options.overlap = config.overlap == "on";
  sync_options.wait_timeout_s = kPeerWaitSeconds;
  sync_options.record_spans = !config.trace.empty();
  sync_options.trace_row = topology.world_size() + rank;  // below the ranks' compute rows
  sync_options.trace_row_name = fmt::format("replica {} stage {} all-reduce", replica, stage);
  GradientSync gradient_sync(model, std::move(buckets), topology.replica_group(stage), replica,
                             transport.get(), sync_options);
  ExecutorOptions exec_options;
  exec_options.record_spans = !config.trace.empty();
  exec_options.after_compute = hooks.after_compute;
  exec_options.after_chunk_gradients = [&gradient_sync](int chunk, int first_done_param) {
    gradient_sync.gradients_done(chunk, first_done_param);
  };
  Executor executor(model, schedule, topology, rank, transport.get(), exec_options);
  int peak_inflight = 0, peak_slots = 0;
  std::unique_ptr<TraceStream> trace_stream;  // this rank's spans, on disk as the run goes
  if (!config.trace.empty()) trace_stream = std::make_unique<TraceStream>(config.trace, rank);
  kernels::Buffer<float> tied_scratch;  // the peer's wte gradient (embedding or head stage)
  if (transport && (model.holds_embedding() != model.holds_head()))
    tied_scratch = backend->alloc<float>(size_t(config.model.vocab) * config.model.dim);

  const int64_t end_step = config.exit_at_step > 0 ? config.exit_at_step : config.steps;
  if (coordinator && end_step < config.steps) {
    CONVEYOR_LOG_INFO(
        "stopping after step {} of {} (--exit-at-step); progress and ETA count "
        "to step {}",
        end_step, config.steps, end_step);
  }
  // Every replica's losses are scaled by the global batch's tokens: the summed gradient is the
  // gradient of the global mean loss.
  const float loss_scale = 1.0f / static_cast<float>(config.tokens_per_step());
  const size_t num_params = model::parameter_table(config.model).size();
  TrainSummary summary;
  double elapsed = 0;

  for (int64_t step = start_step; step < end_step; ++step) {
    const double t0 = now_seconds();
    model.zero_grads();
    // Micro-batch mb of replica r is global micro-batch r * m + mb: the tokens a step trains
    // on do not depend on the number of replicas.
    BatchLoader load = [&](int mb, int32_t* tokens, int32_t* targets) {
      data::sample_batch(*dataset, config.seed, step, replica * config.microbatches + mb,
                         config.micro_batch_size, config.model.seq, tokens, targets);
    };
    gradient_sync.begin_step(step);
    StepResult r = executor.run_step(step, load, loss_scale);
    gradient_sync.finish_gradients();
    for (Span& s : gradient_sync.take_spans()) r.spans.push_back(std::move(s));
    peak_inflight = std::max(peak_inflight, r.peak_inflight);
    peak_slots = std::max(peak_slots, r.peak_slots);
    if (trace_stream) trace_stream->append(r.spans);
    tie_embedding_gradients(model, transport.get(), topology, rank, step, tied_scratch);
    if (checkpoint::fault::armed(checkpoint::fault::kNanGradient, step + 1, stage)) {
      const float nan = std::numeric_limits<float>::quiet_NaN();
      backend->from_host(model.store().grads().data(), &nan, sizeof nan);
    }

    StepReduction reduction(num_params, config.stages);
    // Each parameter's square sum from its owner only: the sum over ranks counts it once.
    reduction.grad_sum_squares =
        model.grad_sum_squares([&gradient_sync](int i) { return gradient_sync.owns(i); });
    if (replica == 0) {  // the step's timing, from the first pipeline
      reduction.schedule_seconds[stage] = r.step_seconds;
      reduction.busy_seconds[stage] = r.busy_seconds;
    }
    reduction.save = checkpoint.progress();
    reduction.stop_requests = stop_signal() != 0 ? 1 : 0;
    if (model.holds_head()) {  // every replica's head: the mean over the global batch
      double loss_sum = 0;
      for (float l : r.losses) loss_sum += l;
      reduction.loss = loss_sum / double(config.global_microbatches());
    }
    if (transport) {
      reduction.unpack(transport->all_reduce_sum(reduction.pack(), peer_deadline()));
    }
    checkpoint.on_progress(reduction.save);  // commits a finished async save
    // Every rank sees the same sum, so all stop after this same step.
    bool stop_requested = reduction.stop_requests > 0;
    const double norm = model::global_norm(reduction.grad_sum_squares);
    require_finite(reduction.loss, norm, step);
    const float clip = model::clip_factor(config.optim, norm);
    if (clip != 1.0f) {
      auto grads = model.store().grads();
      backend->scale_inplace(grads.data(), grads.size(), clip);
    }
    const float lr = model::learning_rate(config.optim, step, config.steps);
    checkpoint.before_update();  // an async save's snapshot must be copied first
    model::adamw_step(config.optim, model.store(), lr, step);
    gradient_sync.gather_parameters();  // ZeRO-1: every replica's updated parameters

    const double step_s = now_seconds() - t0;
    elapsed += step_s;
    StepMetrics m;
    m.step = step + 1;
    m.loss = static_cast<float>(reduction.loss);
    m.lr = lr;
    m.grad_norm = norm;
    m.step_ms = step_s * 1e3;
    m.tokens_per_s = config.tokens_per_step() / step_s;
    m.bubble = worst_bubble(reduction.schedule_seconds, reduction.busy_seconds);
    m.tokens = (step + 1) * config.tokens_per_step();
    m.elapsed_s = now_seconds() - started;
    m.time = unix_seconds();
    m.restarts = restarts;
    if (step == start_step) summary.first_loss = m.loss;
    summary.last_loss = m.loss;
    summary.steps_done = step + 1;
    if (reporter) {
      if (metrics) metrics->write(m);
      if (config.print_every > 0 &&
          ((step + 1) % config.print_every == 0 || step == start_step || step + 1 == end_step)) {
        const double eta = elapsed / double(step + 1 - start_step) * double(end_step - step - 1);
        std::printf("%s\n", progress_line(m, end_step, eta).c_str());
        std::fflush(stdout);
      }
    }
    const int64_t steps_done = step + 1;
    // The save comes before validation: a run asked to stop saves before any optional work,
    // and a request that lands during validation finds this step already saved.
    const bool saving = (config.save_every > 0 && steps_done % config.save_every == 0) ||
                        steps_done == end_step || stop_requested;
    if (saving) checkpoint.save(steps_done);
    if (!stop_requested && val_windows > 0 &&
        ((config.eval_every > 0 && steps_done % config.eval_every == 0) ||
         steps_done == end_step)) {
      const auto val_loss = validation_loss(model, place, val ? &*val : nullptr, val_windows, step);
      if (!val_loss) {  // every rank was told during validation: stop as after the step
        stop_requested = true;
        if (!saving) checkpoint.save(steps_done);
      } else {
        ValidationMetrics v;
        v.step = steps_done;
        v.val_loss = *val_loss;
        v.windows = val_windows;
        v.elapsed_s = now_seconds() - started;
        v.time = unix_seconds();
        if (reporter) {
          if (metrics) metrics->write(v);
          if (config.print_every > 0) {
            std::printf("step %lld: val loss %.4f (%lld windows)\n",
                        static_cast<long long>(steps_done), v.val_loss,
                        static_cast<long long>(val_windows));
            std::fflush(stdout);
          }
        }
      }
    }
    summary.stop_seen = stop_requested;
    if (stop_requested && steps_done < end_step) {
      summary.stopped_on_request = true;
      if (coordinator)
        CONVEYOR_LOG_WARN(
            "asked to stop (SIGTERM or SIGUSR1, {} rank(s)): stopping after step {}; {}; exit "
            "{}",
            std::max(reduction.stop_requests, 1), steps_done,
            config.ckpt_dir.empty()
                ? "nothing is saved (no --ckpt-dir)"
                : fmt::format("checkpoint step {} in {}: run the same command to resume",
                              steps_done, config.ckpt_dir),
            stop_exit_code(!config.ckpt_dir.empty()));
      break;
    }
  }
  checkpoint.finish();
  if (start_step >= end_step && reporter) {
    std::printf("nothing to do: the checkpoint has already done %lld of %lld steps\n",
                static_cast<long long>(start_step), static_cast<long long>(end_step));
  }

  CONVEYOR_LOG_INFO("stage {}: at most {} in flight, {} in use (schedule bound {})", stage,
                    plural(peak_inflight, "micro-batch", "micro-batches"),
                    plural(peak_slots, "activation slot", "activation slots"),
                    schedule.max_inflight(stage));
  if (trace_stream) {
    trace_stream->close();
    merge_trace_parts(config.trace, *trace_stream, transport.get(), topology.coordinator_rank());
    trace_stream->remove();  // the merged trace holds its spans
  }
  if (config.sample > 0 && !summary.stop_seen) {  // optional work: not after a stop request
    std::string text;
    if (tokenizer) {
      std::vector<int32_t> prompt = {0};
      if (tokenizer->can_encode()) prompt = tokenizer->encode("\n");
      if (prompt.empty()) prompt = {0};
      text = tokenizer->decode(generate_tokens(model, place, prompt, config.sample, config.seed));
    } else {
      text = generate(model, place, "\n", config.sample, config.seed);
    }
    // Generation stops early when asked to stop; the ranks agree whether it did.
    const bool cut_short = stop_requested_anywhere(transport.get());
    if (reporter) {
      std::printf("--- sample (%d %s%s) ---\n%s\n---\n", config.sample,
                  tokenizer ? "tokens" : "characters",
                  cut_short ? ", cut short: asked to stop" : "", text.c_str());
      std::fflush(stdout);
    }
  }
  if (transport) transport->shutdown(peer_deadline());
  return summary;
}

}  // namespace conveyor::pipeline
