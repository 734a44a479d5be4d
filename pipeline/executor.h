// Executor: runs one stage's action list (from the schedule) for one training step.
//
// - Receives are posted ahead (the next actions' inputs) so communication overlaps compute.
// - Sends never block; a slot (activations of one micro-batch on one chunk) is reused only
//   after every send from it has completed.
// - Slots come from a pool that grows to the schedule's in-flight bound during the first step
//   and is reused after; the executor counts in-flight micro-batches and fails if the
//   schedule's bound is ever exceeded.
// - Every wait has a deadline; a dead peer surfaces as Error(kPeerFailed) from the transport.
// - Every action's start and end are recorded (bubble fraction and the Chrome trace).
//
// With one stage no transport is needed: chunk-to-chunk hand-offs are local copies.
// Thread safety: one thread drives an Executor.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "model/stage_model.h"
#include "pipeline/schedule.h"
#include "pipeline/trace.h"

namespace conveyor::transport {
class Transport;
}

namespace conveyor::pipeline {

// Fills tokens[N] and targets[N] of micro-batch `mb` of the current step.
using BatchLoader = std::function<void(int mb, int32_t* tokens, int32_t* targets)>;

struct StepResult {
  std::vector<float> losses;  // per micro-batch, ascending; only on the stage holding the head
  double step_seconds = 0;    // first action start to last action end
  double busy_seconds = 0;    // time in F/B/W compute
  int peak_inflight = 0;      // most micro-batches between F and B at once (the bound the
                              // schedule promises; zb-h1 keeps a slot until its W)
  std::vector<Span> spans;    // filled when tracing
};

struct ExecutorOptions {
  double wait_timeout_s = 600;  // bounds every single wait
  bool record_spans = false;    // keep every action's span (for --trace)
  // Simulated compute for `conveyor bench schedule`: each F, B and W also sleeps this long
  // (BW sleeps b + w), so schedules can be measured with more stages than cores.
  double sleep_f_ms = 0, sleep_b_ms = 0, sleep_w_ms = 0;
};

class Executor {
 public:
  // REQUIRES: schedule validated; model holds the chunks of `stage` in chunk order;
  // transport non-null iff schedule.stages > 1.
  Executor(model::StageModel& model, const Schedule& schedule, int stage,
           transport::Transport* transport, const ExecutorOptions& options);
  ~Executor();

  // Runs every action of this stage for step `step`. loss_scale multiplies the head's loss
  // gradient (1 / tokens per step). Weight gradients are accumulated into the model's store.
  StepResult run_step(int64_t step, const BatchLoader& load, float loss_scale);

 private:
  struct SlotState;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace conveyor::pipeline
