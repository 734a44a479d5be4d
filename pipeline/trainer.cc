#include "pipeline/trainer.h"

#include <algorithm>
#include <cstdio>
#include <thread>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "data/dataset.h"
#include "data/sampler.h"
#include "kernels/cpu/ops.h"
#include "model/stage_model.h"
#include "pipeline/executor.h"
#include "pipeline/generate.h"
#include "pipeline/metrics.h"
#include "pipeline/schedule.h"
#include "pipeline/schedule_validator.h"
#include "pipeline/span_codec.h"
#include "pipeline/stage_checkpoint.h"
#include "pipeline/trace.h"
#include "transport/transport.h"

namespace conveyor::pipeline {

namespace {

constexpr double kWaitTimeoutSeconds = 600;

// This stage's pieces of the model: chunk c is virtual stage c * p + stage.
std::vector<model::ChunkSpec> my_chunks(const TrainConfig& c, int stage) {
  const int pieces = c.stages * c.virtual_stages;
  auto counts = c.partition.empty() ? model::default_partition(c.model.layers, pieces)
                                    : model::parse_partition(c.partition, c.model.layers, pieces);
  auto all = model::chunk_specs(counts);
  std::vector<model::ChunkSpec> mine;
  for (int v = 0; v < c.virtual_stages; ++v) mine.push_back(all[v * c.stages + stage]);
  return mine;
}

void set_blas_threads(const TrainConfig& c) {
  int threads = c.threads;
  if (threads == 0) {
    const int cores = std::max(1u, std::thread::hardware_concurrency());
    threads = std::max(1, cores / c.stages);
  }
  cpu::set_num_threads(threads);
}

// Sums the embedding's and the head's wte gradients, in that order, on every stage that holds
// a copy of wte, so both copies get the same bits whatever the partition.
void tie_embedding_gradients(model::StageModel& m, transport::Transport* t, int stage,
                             int head_stage, int64_t step) {
  if (!m.holds_embedding() && !m.holds_head()) return;
  float* wte_grad = m.store().grad("wte.weight");
  const size_t n = size_t(m.config().vocab) * m.config().dim;
  if (m.holds_embedding() && m.holds_head()) {
    cpu::add_inplace(wte_grad, m.head_wte_grad().data(), n);
    return;
  }
  const transport::Tag tag{static_cast<uint32_t>(step), 0xFFFF, 0, transport::Tag::kControl};
  std::vector<float> other(n);
  const int peer = m.holds_embedding() ? head_stage : 0;
  const float* mine = m.holds_embedding() ? wte_grad : m.head_wte_grad().data();
  auto deadline = Deadline::after_seconds(kWaitTimeoutSeconds);
  auto recv = t->irecv(peer, tag, other.data(), n * sizeof(float));
  auto send = t->isend(peer, tag, mine, n * sizeof(float));
  t->wait(send, deadline);
  t->wait(recv, deadline);
  if (m.holds_embedding()) {
    cpu::add_inplace(wte_grad, other.data(), n);  // embedding + head
  } else {
    std::copy(other.begin(), other.end(), wte_grad);          // embedding
    cpu::add_inplace(wte_grad, m.head_wte_grad().data(), n);  // + head
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

}  // namespace

TrainSummary train(const TrainConfig& config) {
  config.validate();
  const ScheduleKind kind = parse_schedule_kind(config.schedule);
  const Schedule schedule =
      make_schedule(kind, config.stages, config.microbatches, config.virtual_stages);
  validate_schedule(schedule);  // throws with the grid when the schedule is broken

  std::unique_ptr<transport::Transport> transport;
  int stage = 0;
  if (config.stages > 1) {
    auto options = transport::options_from_env(config.fingerprint());
    CONVEYOR_REQUIRE(options.world_size == config.stages,
                     "WORLD_SIZE is {} but --stages is {}; start one process per stage, e.g. "
                     "conveyor launch --nproc {} -- conveyor train --stages {} ...",
                     options.world_size, config.stages, config.stages, config.stages);
    stage = options.rank;
    log::init(stage, stage);
    transport = transport::Transport::create(options);
  } else {
    log::init();
  }
  set_blas_threads(config);

  const auto chunks = my_chunks(config, stage);
  model::StageModel model(config.model, chunks, config.micro_batch_size);
  model.store().initialize(config.seed);
  StageCheckpoint checkpoint(config, model, stage, transport.get());
  const int64_t start_step = checkpoint.restore();
  const int head_stage = (config.stages * config.virtual_stages - 1) % config.stages;
  const bool reporter = model.holds_head();

  // Only the stages that read tokens or targets need the data.
  std::optional<data::Dataset> dataset;
  if (model.holds_embedding() || model.holds_head()) {
    dataset = data::Dataset::open(config.data, config.model.vocab);
    // Fail now, not at the first step, when the data is shorter than one window.
    CONVEYOR_REQUIRE(dataset->size() > size_t(config.model.seq),
                     "--seq {} is larger than the data ({} tokens in {}); use a smaller --seq or "
                     "more data",
                     config.model.seq, dataset->size(), config.data);
    if (stage == 0) CONVEYOR_LOG_INFO("data: {}", dataset->description());
  }
  if (stage == 0) {
    CONVEYOR_LOG_INFO("model: {} layers, d={}, {} heads, T={}, V={}: {:.2f}M parameters",
                      config.model.layers, config.model.dim, config.model.heads, config.model.seq,
                      config.model.vocab, config.model.num_parameters() / 1e6);
    CONVEYOR_LOG_INFO("pipeline: {} stage(s), schedule {}, {} micro-batches of {} sequences",
                      config.stages, config.schedule, config.microbatches, config.micro_batch_size);
  }

  std::unique_ptr<MetricsWriter> metrics;
  if (reporter && !config.metrics.empty())
    metrics = std::make_unique<MetricsWriter>(config.metrics);

  ExecutorOptions exec_options;
  exec_options.wait_timeout_s = kWaitTimeoutSeconds;
  exec_options.record_spans = !config.trace.empty();
  exec_options.sleep_f_ms = config.sleep_f_ms;
  exec_options.sleep_b_ms = config.sleep_b_ms;
  exec_options.sleep_w_ms = config.sleep_w_ms;
  Executor executor(model, schedule, stage, transport.get(), exec_options);
  int peak_inflight = 0;
  std::vector<Span> trace_spans;

  const int64_t end_step = config.exit_at_step > 0 ? config.exit_at_step : config.steps;
  const float loss_scale = 1.0f / static_cast<float>(config.tokens_per_step());
  const size_t num_params = model::parameter_table(config.model).size();
  TrainSummary summary;
  double elapsed = 0;

  for (int64_t step = start_step; step < end_step; ++step) {
    const double t0 = now_seconds();
    model.zero_grads();
    BatchLoader load = [&](int mb, int32_t* tokens, int32_t* targets) {
      data::sample_batch(*dataset, config.seed, step, mb, config.micro_batch_size, config.model.seq,
                         tokens, targets);
    };
    StepResult r = executor.run_step(step, load, loss_scale);
    peak_inflight = std::max(peak_inflight, r.peak_inflight);
    if (!config.trace.empty()) {
      trace_spans.insert(trace_spans.end(), r.spans.begin(), r.spans.end());
    }
    tie_embedding_gradients(model, transport.get(), stage, head_stage, step);

    // One all-reduce carries the per-parameter gradient sums of squares, every stage's
    // schedule time and busy time, the loss and the async-save status. Each element has one
    // non-zero contributor, so the sums are exact.
    const int p = config.stages;
    const size_t times_at = num_params, busy_at = num_params + p, loss_at = num_params + 2 * p;
    const size_t status_at = loss_at + 1;
    std::vector<double> reduce = model.grad_sum_squares();
    reduce.resize(status_at + StageCheckpoint::kStatusSize, 0.0);
    reduce[times_at + stage] = r.step_seconds;
    reduce[busy_at + stage] = r.busy_seconds;
    checkpoint.fill_status(&reduce[status_at]);
    if (reporter) {
      double loss_sum = 0;
      for (float l : r.losses) loss_sum += l;
      reduce[loss_at] = loss_sum / config.microbatches;
    }
    if (transport) {
      reduce = transport->all_reduce_sum(reduce, Deadline::after_seconds(kWaitTimeoutSeconds));
    }
    checkpoint.on_status(&reduce[status_at]);  // commits a finished async save
    const double norm = model::global_norm(std::span(reduce).first(num_params));
    const float clip = model::clip_factor(config.optim, norm);
    if (clip != 1.0f) {
      auto grads = model.store().grads();
      cpu::scale_inplace(grads.data(), grads.size(), clip);
    }
    const float lr = model::learning_rate(config.optim, step, config.steps);
    checkpoint.before_update();  // an async save's snapshot must be copied first
    model::adamw_step(config.optim, model.store(), lr, step);

    const double step_s = now_seconds() - t0;
    elapsed += step_s;
    StepMetrics m;
    m.step = step + 1;
    m.loss = static_cast<float>(reduce[loss_at]);
    m.lr = lr;
    m.grad_norm = norm;
    m.step_ms = step_s * 1e3;
    m.tokens_per_s = config.tokens_per_step() / step_s;
    m.bubble =
        worst_bubble(std::span(reduce).subspan(times_at, p), std::span(reduce).subspan(busy_at, p));
    if (step == start_step) summary.first_loss = m.loss;
    summary.last_loss = m.loss;
    summary.steps_done = step + 1;
    if (reporter) {
      if (metrics) metrics->write(m);
      if (config.print_every > 0 &&
          ((step + 1) % config.print_every == 0 || step == start_step || step + 1 == end_step)) {
        const double eta = elapsed / double(step + 1 - start_step) * double(end_step - step - 1);
        std::printf("%s\n", progress_line(m, config.steps, eta).c_str());
        std::fflush(stdout);
      }
    }
    const int64_t steps_done = step + 1;
    if ((config.save_every > 0 && steps_done % config.save_every == 0) || steps_done == end_step) {
      checkpoint.save(steps_done);
    }
  }
  checkpoint.finish();
  if (start_step >= end_step && reporter) {
    std::printf("nothing to do: the checkpoint has already done %lld of %lld steps\n",
                static_cast<long long>(start_step), static_cast<long long>(end_step));
  }

  CONVEYOR_LOG_INFO("stage {}: at most {} micro-batches in flight (schedule bound {})", stage,
                    peak_inflight, schedule.max_inflight(stage));
  if (!config.trace.empty()) {
    std::vector<Span> all = trace_spans;
    if (transport) {
      all.clear();
      for (int r = 0; r < config.stages; ++r) {
        std::vector<uint8_t> bytes;
        if (r == stage) bytes = spans_to_bytes(trace_spans);
        transport->broadcast(bytes, r, Deadline::after_seconds(kWaitTimeoutSeconds));
        auto spans = spans_from_bytes(bytes);
        all.insert(all.end(), spans.begin(), spans.end());
      }
    }
    if (stage == 0) write_chrome_trace(config.trace, all);
  }
  if (config.sample > 0) {
    const PipelinePlace place{stage, config.stages, transport.get()};
    std::string text = generate(model, place, "\n", config.sample, config.seed);
    if (reporter) {
      std::printf("--- sample (%d characters) ---\n%s\n---\n", config.sample, text.c_str());
      std::fflush(stdout);
    }
  }
  if (transport) transport->shutdown(Deadline::after_seconds(kWaitTimeoutSeconds));
  return summary;
}

}  // namespace conveyor::pipeline
