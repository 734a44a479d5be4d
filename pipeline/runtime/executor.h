// Executor: runs one stage's program (stage_program(): the schedule's compute actions and
// the receives and sends they imply) for one training step.
//
// - Peers come from the Topology: a receive or send names a peer virtual stage, and the
//   topology says which rank holds it. A peer that is this rank (one stage holding several
//   chunks) is a local copy into the other chunk's slot; no transport is involved.
// - Receives are posted as early as the plan allows, so that a transfer runs while this
//   stage computes (a rendezvous needs the receive posted before any byte moves): a gradient's
//   as soon as its micro-batch's F has run on the chunk (its slot is held anyway, so it costs
//   no memory); an activation's, in plan order, as soon as the slot it takes keeps the stage
//   within the schedule's bound plus one slot at every step until its own. The receive step of
//   the program then waits for its data. Sends are posted as soon as their data is final: right
//   after the action that produced it (with split backward, the input gradient goes out before
//   W runs).
// - Sends never block; a slot (activations of one micro-batch on one chunk) comes from a
//   SlotPool, which hands a slot out again only after its sends completed.
// - A slot is held from the micro-batch's F (or the receive posted for it) until its W; the
//   executor fails if more micro-batches than the schedule's bound (Schedule::max_inflight)
//   are between F and W, or more slots than the bound plus the one for receives posted ahead
//   are in use.
// - Every wait has a deadline; a dead peer surfaces as Error(kPeerFailed) from the transport.
// - Every compute action's start and end are recorded (bubble fraction and the Chrome trace).
//   With record_spans, so is every transfer with another rank, on its own row
//   (transfer_row): from when it was posted to when the transport saw it complete, so a trace
//   shows whether transfers hide behind compute; and on the compute row, every wait for one.
//
// Thread safety: one thread drives an Executor.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "model/stage_model.h"
#include "pipeline/runtime/trace.h"
#include "pipeline/schedule/schedule.h"
#include "pipeline/schedule/topology.h"

namespace conveyor::transport {
class Transport;
}

namespace conveyor::pipeline {

// Fills tokens[N] and targets[N] of micro-batch `mb` of the current step.
using BatchLoader = std::function<void(int mb, int32_t* tokens, int32_t* targets)>;

// Called after each compute action (F, B, W; a BW as its B and W parts) has run, on the
// executor's thread, inside the action's timed span. Benchmarks use it to simulate compute
// time; tests to observe the order of actions.
using ComputeHook = std::function<void(const Action&)>;

struct StepResult {
  std::vector<float> losses;  // per micro-batch, ascending; only on the stage holding the head
  double step_seconds = 0;    // first action start to last action end
  double busy_seconds = 0;    // time in F/B/W compute
  int peak_inflight = 0;      // most micro-batches between F and W at once (<= the bound)
  int peak_slots = 0;         // most slots in use at once (the activation memory held)
  std::vector<Span> spans;    // filled when tracing
};

// Called on the executor's thread during and after chunk `chunk`'s last weight-gradient
// action of the step, each time more of its gradients are final: every parameter of the chunk
// with store index >= first_done_param (0 at the end of the action: all of them) holds its
// gradient for the step once the backend's queued work has run (a reader outside the
// backend's stream drains it first: synchronize()). The data-parallel all-reduce starts its
// buckets from this (pipeline/parallel/gradient_sync.h).
using GradientsDoneHook = std::function<void(int chunk, int first_done_param)>;

struct ExecutorOptions {
  double wait_timeout_s = kPeerWaitSeconds;  // bounds every single wait
  bool record_spans = false;                 // keep every action's span (for --trace)
  int transfer_row = -1;                     // the trace row of its transfers; -1: none
  std::string transfer_row_name;
  ComputeHook after_compute;                // optional
  GradientsDoneHook after_chunk_gradients;  // optional
};

class Executor {
 public:
  // REQUIRES: schedule validated and laid out like `topology`; model holds the chunks of
  // this rank's stage in chunk order; transport non-null iff a peer is another rank.
  Executor(model::StageModel& model, const Schedule& schedule, const Topology& topology, int rank,
           transport::Transport* transport, const ExecutorOptions& options);
  ~Executor();

  // Runs every step of this stage's program for training step `step`. loss_scale multiplies
  // the head's loss gradient (1 / tokens per step). Weight gradients are accumulated into
  // the model's store.
  StepResult run_step(int64_t step, const BatchLoader& load, float loss_scale);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace conveyor::pipeline
