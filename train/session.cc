#include "train/session.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>

#include "checkpoint/fault_injection.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "data/sampler.h"
#include "data/tokenizer.h"
#include "infer/generate.h"
#include "kernels/backend.h"
#include "kernels/device.h"
#include "model/flops.h"
#include "pipeline/parallel/gradient_sync.h"
#include "pipeline/parallel/step_reduction.h"
#include "pipeline/runtime/device_transport.h"
#include "pipeline/runtime/executor.h"
#include "pipeline/runtime/message_tag.h"
#include "pipeline/runtime/stop_request.h"
#include "pipeline/runtime/trace.h"
#include "pipeline/runtime/trace_merge.h"
#include "pipeline/schedule/schedule_validator.h"
#include "train/mfu.h"
#include "train/session_setup.h"
#include "train/stage_checkpoint.h"
#include "train/tied_gradients.h"
#include "train/validation.h"

namespace conveyor::pipeline {

namespace {

Deadline peer_deadline() {
  return Deadline::after_seconds(kPeerWaitSeconds);
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

// "1 micro-batch", "4 micro-batches"
std::string plural(int64_t n, const char* one, const char* many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

}  // namespace

// Declared in the order they are built; destroyed in reverse (the transport last).
struct TrainingSession::State {
  TrainConfig config;
  TrainHooks hooks;
  Schedule schedule;
  Topology topology;
  int rank = 0, stage = 0, replica = 0;
  bool coordinator = false;  // holds the checkpoint directory, logs the run's shape
  bool reporter = false;     // replica 0's head stage: metrics and progress
  std::unique_ptr<transport::Transport> transport;
  std::unique_ptr<kernels::Backend> backend;
  std::unique_ptr<model::StageModel> model;
  std::unique_ptr<StageCheckpoint> checkpoint;
  std::optional<data::Tokenizer> tokenizer;
  int64_t start_step = 0, end_step = 0;
  int restarts = 0;
  MfuPeak mfu_peak;  // MFU's denominator (train/mfu.h); tflops 0: no MFU in the metrics
  std::optional<data::Dataset> dataset;
  ValidationData validation;
  std::unique_ptr<MetricsWriter> metrics;
  std::unique_ptr<GradientSync> gradient_sync;
  std::unique_ptr<Executor> executor;
  std::unique_ptr<TraceStream> trace_stream;  // this rank's spans, on disk as the run goes
  kernels::Buffer<float> tied_scratch;        // the peer's wte gradient (embedding or head)
  float loss_scale = 1;
  size_t num_params = 0;  // in the global parameter table
  double started = 0, elapsed = 0;
  int peak_inflight = 0, peak_slots = 0;
  TrainSummary summary;

  PipelinePlace place() const { return {topology, rank, transport.get()}; }
  // Micro-batch mb of replica r is global micro-batch r * m + mb: the tokens a step trains
  // on do not depend on the number of replicas.
  BatchLoader loader(int64_t step) {
    return [this, step](int mb, int32_t* tokens, int32_t* targets) {
      data::sample_batch(*dataset, config.seed, step, replica * config.microbatches + mb,
                         config.micro_batch_size, config.model.seq, tokens, targets);
    };
  }
};

std::unique_ptr<TrainingSession> TrainingSession::build(const TrainConfig& given,
                                                        const TrainHooks& hooks) {
  install_stop_handlers();
  given.validate();
  // Read even for one stage: two processes started for a one-stage job would each train it.
  transport::Options launched = transport::options_from_env("");
  auto s = std::make_unique<State>();
  TrainConfig& config = s->config = with_replicas_resolved(given, launched);
  s->hooks = hooks;
  launched.fingerprint = config.fingerprint();
  require_outputs_writable(config);
  s->schedule =
      make_schedule(parse_schedule_kind(config.schedule), config.stages, config.microbatches,
                    config.chunks_per_stage(), config.warmup_per_hop);
  validate_schedule(s->schedule);  // throws with the grid when the schedule is broken
  s->topology = Topology::make(config.replicas, config.stages, s->schedule.virtual_stages,
                               parse_rank_order(config.layout), s->schedule.layout().placement);
  // With --device cuda, this rank's GPU (kernels/device.h): --gpu, else its local rank's as the
  // launch resolved it. Before any peer is waited for: no GPU refuses the run at once.
  const kernels::DeviceKind device = kernels::parse_device_kind(config.device);
  std::optional<kernels::Gpu> gpu;
  if (device == kernels::DeviceKind::kCuda)
    gpu = kernels::choose_rank_gpu(config.gpu, launched.local_rank);
  if (gpu) launched.gpu_numa_node = gpu->numa_node;  // the NIC nearest the GPU
  const bool multi_rank = s->topology.world_size() > 1;
  s->rank = multi_rank ? launched.rank : 0;
  s->stage = s->topology.place(s->rank).stage;
  s->replica = s->topology.place(s->rank).replica;
  s->coordinator = s->rank == s->topology.coordinator_rank();
  multi_rank ? log::init(s->rank, s->stage) : log::init();

  const auto chunks = my_chunks(config, s->topology, s->stage);
  BucketPlan buckets = plan_stage_buckets(config, chunks, s->schedule, s->stage);
  // This replica's parameters: it writes them to its shard, counts them in the norm and,
  // with ZeRO-1, keeps their AdamW moments and updates them.
  const std::vector<bool> owned = GradientSync::owned_parameters(buckets, s->replica);
  const std::vector<bool> moments_kept = config.zero == 1 ? owned : std::vector<bool>{};
  // Before any peer is waited for: a stage that cannot fit refuses the run at once.
  require_memory_fits(config, chunks, s->schedule.max_inflight(s->stage), moments_kept, s->rank,
                      s->topology, gpu ? &*gpu : nullptr);
  if (multi_rank) {
    s->transport = transport::Transport::create(launched);
    s->transport->set_tag_describer(describe_message);
  }
  s->backend = kernels::make_backend({device, kernel_threads(config), gpu ? gpu->index : 0});
  // Device tensors go through pinned host memory where UCX cannot reach the GPU.
  s->transport = transport_for_backend(std::move(s->transport), *s->backend);
  s->model = std::make_unique<model::StageModel>(*s->backend, config.model, chunks,
                                                 config.micro_batch_size, moments_kept);
  s->model->store().initialize(config.seed);
  s->checkpoint = std::make_unique<StageCheckpoint>(config, *s->model, s->topology, s->rank,
                                                    s->transport.get(), owned);
  // Before training: a --tokenizer that cannot decode this model's ids fails now.
  if (!config.tokenizer.empty()) {
    s->tokenizer = data::Tokenizer::load(config.tokenizer);
    CONVEYOR_REQUIRE(s->tokenizer->vocab_size() <= config.model.vocab,
                     "--tokenizer {} has {} tokens but --vocab is {}; use --vocab {} (or more)",
                     config.tokenizer, s->tokenizer->vocab_size(), config.model.vocab,
                     s->tokenizer->vocab_size());
  }
  s->start_step = s->checkpoint->restore();
  if (!config.init_from.empty() && s->start_step == 0) load_initial_weights(config, *s->model);
  if (!config.init_from.empty() && s->start_step > 0 && s->coordinator)
    CONVEYOR_LOG_INFO("--init-from {} not used: resuming from step {} of --ckpt-dir",
                      config.init_from, s->start_step);
  s->reporter = s->model->holds_head() && s->replica == 0;
  s->restarts = restart_count_from_env();
  s->dataset = open_training_data(config, *s->model, s->coordinator);
  if (s->coordinator) log_run(config, s->topology, s->backend->describe());
  s->mfu_peak = choose_mfu_peak(config.peak_tflops, gpu ? &*gpu : nullptr);
  const std::string mfu_line = describe(s->mfu_peak, s->topology.world_size());
  if (s->reporter && !mfu_line.empty()) CONVEYOR_LOG_INFO("{}", mfu_line);
  if (s->reporter && !config.metrics.empty())
    s->metrics = std::make_unique<MetricsWriter>(
        config.metrics,
        s->start_step > 0 || s->restarts > 0 ? std::optional(s->start_step) : std::nullopt);
  s->validation =
      open_validation_data(config, *s->model, s->topology, s->transport.get(), s->coordinator);
  s->started = now_seconds();

  GradientSyncOptions sync_options;
  sync_options.zero1 = config.zero == 1;
  sync_options.overlap = config.overlap == "on";
  sync_options.wait_timeout_s = kPeerWaitSeconds;
  sync_options.record_spans = !config.trace.empty();
  sync_options.trace_row = s->topology.world_size() + s->rank;  // below the compute rows
  sync_options.trace_row_name = fmt::format("replica {} stage {} all-reduce", s->replica, s->stage);
  s->gradient_sync = std::make_unique<GradientSync>(*s->model, std::move(buckets),
                                                    s->topology.replica_group(s->stage), s->replica,
                                                    s->transport.get(), sync_options);
  ExecutorOptions exec_options;
  exec_options.record_spans = !config.trace.empty();
  exec_options.transfer_row = 2 * s->topology.world_size() + s->rank;  // below the all-reduce's
  exec_options.transfer_row_name =
      s->topology.replicas > 1 ? fmt::format("replica {} stage {} transfers", s->replica, s->stage)
                               : fmt::format("stage {} transfers", s->stage);
  exec_options.after_compute = hooks.after_compute;
  exec_options.after_chunk_gradients = [sync = s->gradient_sync.get()](int chunk, int first) {
    sync->gradients_done(chunk, first);
  };
  s->executor = std::make_unique<Executor>(*s->model, s->schedule, s->topology, s->rank,
                                           s->transport.get(), exec_options);
  if (!config.trace.empty()) s->trace_stream = std::make_unique<TraceStream>(config.trace, s->rank);
  if (s->transport && (s->model->holds_embedding() != s->model->holds_head()))
    s->tied_scratch = s->backend->alloc<float>(size_t(config.model.vocab) * config.model.dim);

  s->end_step = config.exit_at_step > 0 ? config.exit_at_step : config.steps;
  if (s->coordinator && s->end_step < config.steps)
    CONVEYOR_LOG_INFO(
        "stopping after step {} of {} (--exit-at-step); progress and ETA count "
        "to step {}",
        s->end_step, config.steps, s->end_step);
  // Every replica's losses are scaled by the global batch's tokens: the summed gradient is the
  // gradient of the global mean loss.
  s->loss_scale = 1.0f / static_cast<float>(config.tokens_per_step());
  s->num_params = model::parameter_table(config.model).size();
  return std::unique_ptr<TrainingSession>(new TrainingSession(std::move(s)));
}

TrainingSession::TrainingSession(std::unique_ptr<State> state) : s_(std::move(state)) {}
TrainingSession::~TrainingSession() = default;

int64_t TrainingSession::start_step() const {
  return s_->start_step;
}

int64_t TrainingSession::end_step() const {
  return s_->end_step;
}

namespace {

// The step's one all-reduce (step_reduction.h): each parameter's square sum from its owner
// only (the sum over ranks counts it once), the first pipeline's timing, the loss from every
// replica's head (the mean over the global batch), the async save's progress, stop requests.
StepReduction reduce_across_ranks(TrainingSession::State& s, int64_t step,
                                  const StepResult& result) {
  StepReduction reduction(s.num_params, s.config.stages);
  reduction.grad_sum_squares =
      s.model->grad_sum_squares([&s](int i) { return s.gradient_sync->owns(i); });
  if (s.replica == 0) {
    reduction.schedule_seconds[s.stage] = result.step_seconds;
    reduction.busy_seconds[s.stage] = result.busy_seconds;
  }
  reduction.save = s.checkpoint->progress();
  reduction.stop_requests = stop_signal() != 0 ? 1 : 0;
  if (s.model->holds_head()) {
    double loss_sum = 0;
    for (float l : result.losses) loss_sum += l;
    reduction.loss = loss_sum / double(s.config.global_microbatches());
  }
  if (s.transport) reduction.unpack(s.transport->all_reduce_sum(reduction.pack(), peer_deadline()));
  return reduction;
}

// The step's spans (compute and all-reduce) into this rank's trace, and the peaks the run
// logs at its end.
void record_spans(TrainingSession::State& s, StepResult& result) {
  for (Span& span : s.gradient_sync->take_spans()) result.spans.push_back(std::move(span));
  s.peak_inflight = std::max(s.peak_inflight, result.peak_inflight);
  s.peak_slots = std::max(s.peak_slots, result.peak_slots);
  if (s.trace_stream) s.trace_stream->append(result.spans);
}

// --sample: text from the trained model, printed by the reporter.
void sample(TrainingSession::State& s) {
  const int count = s.config.sample;
  std::string text;
  if (s.tokenizer) {
    std::vector<int32_t> prompt = {0};
    if (s.tokenizer->can_encode()) prompt = s.tokenizer->encode("\n");
    if (prompt.empty()) prompt = {0};
    text = s.tokenizer->decode(generate_tokens(*s.model, s.place(), prompt, count, s.config.seed));
  } else {
    text = generate(*s.model, s.place(), "\n", count, s.config.seed);
  }
  // Generation stops early when asked to stop; the ranks agree whether it did.
  const bool cut_short = stop_requested_anywhere(s.transport.get());
  if (!s.reporter) return;
  std::printf("--- sample (%d %s%s) ---\n%s\n---\n", count, s.tokenizer ? "tokens" : "characters",
              cut_short ? ", cut short: asked to stop" : "", text.c_str());
  std::fflush(stdout);
}

StepOutcome measure(TrainingSession::State& s, int64_t step, const StepReduction& reduction,
                    double norm, float lr, double step_seconds) {
  s.elapsed += step_seconds;
  StepOutcome out;
  StepMetrics& m = out.metrics;
  m.step = step + 1;
  m.loss = static_cast<float>(reduction.loss);
  m.lr = lr;
  m.grad_norm = norm;
  m.step_ms = step_seconds * 1e3;
  m.tokens_per_s = s.config.tokens_per_step() / step_seconds;
  m.bubble = worst_bubble(reduction.schedule_seconds, reduction.busy_seconds);
  m.tokens = (step + 1) * s.config.tokens_per_step();
  m.elapsed_s = now_seconds() - s.started;
  m.time = unix_seconds();
  m.restarts = s.restarts;
  if (s.mfu_peak.tflops > 0)
    m.mfu = model_flops_utilization(m.tokens_per_s, model::training_flops_per_token(s.config.model),
                                    s.topology.world_size(), s.mfu_peak.tflops);
  out.stop_requests = reduction.stop_requests;
  return out;
}

}  // namespace

StepOutcome TrainingSession::step(int64_t step) {
  State& s = *s_;
  model::StageModel& model = *s.model;
  const double t0 = now_seconds();
  model.zero_grads();
  s.gradient_sync->begin_step(step);
  StepResult result = s.executor->run_step(step, s.loader(step), s.loss_scale);
  s.gradient_sync->finish_gradients();  // the replicas' sum of every gradient bucket
  tie_embedding_gradients(model, s.transport.get(), s.topology, s.rank, step, s.tied_scratch);
  if (checkpoint::fault::armed(checkpoint::fault::kNanGradient, step + 1, s.stage)) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    s.backend->from_host(model.store().grads().data(), &nan, sizeof nan);
  }
  const StepReduction reduction = reduce_across_ranks(s, step, result);
  s.checkpoint->on_progress(reduction.save);  // commits a finished async save
  const double norm = model::global_norm(reduction.grad_sum_squares);
  require_finite(reduction.loss, norm, step);
  const float clip = model::clip_factor(s.config.optim, norm);
  if (clip != 1.0f)
    s.backend->scale_inplace(model.store().grads().data(), model.store().grads().size(), clip);
  const float lr = model::learning_rate(s.config.optim, step, s.config.steps);
  s.checkpoint->before_update();  // an async save's snapshot must be copied first
  model::adamw_step(s.config.optim, model.store(), lr, step);
  s.gradient_sync->gather_parameters();  // ZeRO-1: every replica's updated parameters
  record_spans(s, result);
  return measure(s, step, reduction, norm, lr, now_seconds() - t0);
}

void TrainingSession::report(const StepOutcome& outcome) {
  State& s = *s_;
  const StepMetrics& m = outcome.metrics;
  if (m.step == s.start_step + 1) s.summary.first_loss = m.loss;
  s.summary.last_loss = m.loss;
  s.summary.steps_done = m.step;
  if (!s.reporter) return;
  if (s.metrics) s.metrics->write(m);
  const int every = s.config.print_every;
  if (every > 0 && (m.step % every == 0 || m.step == s.start_step + 1 || m.step == s.end_step)) {
    const double eta = s.elapsed / double(m.step - s.start_step) * double(s.end_step - m.step);
    std::printf("%s\n", progress_line(m, s.end_step, eta).c_str());
    std::fflush(stdout);
  }
}

bool TrainingSession::after_step(const StepOutcome& outcome) {
  State& s = *s_;
  const TrainConfig& c = s.config;
  const int64_t steps_done = outcome.metrics.step;
  // Every rank saw the same sum, so all stop after this same step.
  bool stop = outcome.stop_requests > 0;
  // The save comes before validation: a run asked to stop saves before any optional work,
  // and a request that lands during validation finds this step already saved.
  const bool saving =
      (c.save_every > 0 && steps_done % c.save_every == 0) || steps_done == s.end_step || stop;
  if (saving) s.checkpoint->save(steps_done);
  const bool validating =
      s.validation.windows > 0 &&
      ((c.eval_every > 0 && steps_done % c.eval_every == 0) || steps_done == s.end_step);
  if (!stop && validating) {
    const auto val_loss =
        validation_loss(*s.model, s.place(), s.validation.data ? &*s.validation.data : nullptr,
                        s.validation.windows, steps_done - 1);
    if (!val_loss) {  // every rank was told during validation: stop as after the step
      stop = true;
      if (!saving) s.checkpoint->save(steps_done);
    } else if (s.reporter) {
      ValidationMetrics v{.step = steps_done,
                          .val_loss = *val_loss,
                          .windows = s.validation.windows,
                          .elapsed_s = now_seconds() - s.started,
                          .time = unix_seconds()};
      if (s.metrics) s.metrics->write(v);
      if (c.print_every > 0) {
        std::printf("step %lld: val loss %.4f (%lld windows)\n", static_cast<long long>(steps_done),
                    v.val_loss, static_cast<long long>(v.windows));
        std::fflush(stdout);
      }
    }
  }
  s.summary.stop_seen = stop;
  if (!stop || steps_done >= s.end_step) return false;
  s.summary.stopped_on_request = true;
  if (s.coordinator)
    CONVEYOR_LOG_WARN(
        "asked to stop (SIGTERM or SIGUSR1, {} rank(s)): stopping after step {}; {}; exit {}",
        std::max(outcome.stop_requests, 1), steps_done,
        c.ckpt_dir.empty() ? "nothing is saved (no --ckpt-dir)"
                           : fmt::format("checkpoint step {} in {}: run the same command to resume",
                                         steps_done, c.ckpt_dir),
        stop_exit_code(!c.ckpt_dir.empty()));
  return true;
}

TrainSummary TrainingSession::finish() {
  State& s = *s_;
  s.checkpoint->finish();
  if (s.start_step >= s.end_step && s.reporter)
    std::printf("nothing to do: the checkpoint has already done %lld of %lld steps\n",
                static_cast<long long>(s.start_step), static_cast<long long>(s.end_step));
  CONVEYOR_LOG_INFO("stage {}: at most {} in flight, {} in use (schedule bound {})", s.stage,
                    plural(s.peak_inflight, "micro-batch", "micro-batches"),
                    plural(s.peak_slots, "activation slot", "activation slots"),
                    s.schedule.max_inflight(s.stage));
  if (s.trace_stream) {
    s.trace_stream->close();
    merge_trace_parts(s.config.trace, *s.trace_stream, s.transport.get(),
                      s.topology.coordinator_rank());
    s.trace_stream->remove();  // the merged trace holds its spans
  }
  if (s.config.sample > 0 && !s.summary.stop_seen) sample(s);  // optional: not after a stop
  if (s.transport) s.transport->shutdown(peer_deadline());
  return s.summary;
}

}  // namespace conveyor::pipeline
