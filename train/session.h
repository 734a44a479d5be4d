// One stage process's training run, in three parts: build() wires everything up to the first
// step (the configuration resolved against the launch, schedule, transport, model, checkpoint
// restore, data, gradient sync, executor), step() is one optimizer step, and finish() ends
// the run (the last checkpoint, the trace, the sample, a clean shutdown).
//
// step() is the training step and nothing else: run the schedule (forward and backward of
// every micro-batch, with the data-parallel gradient sum overlapping it), tie the embedding
// gradients, reduce across ranks, clip, update. What happens between steps hangs around it:
// report() writes metrics and the progress line, after_step() saves, validates and decides
// whether a stop request ends the run. train() (trainer.h) is the loop over them.
//
// Collective: every rank of the job calls the same functions for the same steps.
#pragma once

#include <cstdint>
#include <memory>

#include "train/metrics.h"
#include "train/trainer.h"

namespace conveyor::pipeline {

// What one step gives the code around it.
struct StepOutcome {
  StepMetrics metrics;    // also on ranks that do not report
  int stop_requests = 0;  // ranks asked to stop (SIGTERM/SIGUSR1) before this step ended
};

class TrainingSession {
 public:
  // Everything up to the first step. Throws Error (exit 2) for a configuration, launch or
  // checkpoint that cannot train, before any step runs.
  static std::unique_ptr<TrainingSession> build(const TrainConfig& config,
                                                const TrainHooks& hooks = {});
  ~TrainingSession();
  TrainingSession(const TrainingSession&) = delete;
  TrainingSession& operator=(const TrainingSession&) = delete;

  int64_t start_step() const;  // steps already done (a resumed checkpoint's)
  int64_t end_step() const;    // --steps, or --exit-at-step

  // Optimizer step `step` (0-based): schedule, tie, reduce, clip, update.
  StepOutcome step(int64_t step);
  // Metrics row and progress line, on the rank that reports.
  void report(const StepOutcome& outcome);
  // The save (every --save-every steps, at the end, or when asked to stop), then validation
  // (every --eval-every steps and at the end). Returns true when the run stops here.
  bool after_step(const StepOutcome& outcome);
  // The last checkpoint, the trace, the sample (not after a stop request), then shutdown.
  TrainSummary finish();

  struct State;  // everything build() wires up (session.cc)

 private:
  explicit TrainingSession(std::unique_ptr<State> state);
  std::unique_ptr<State> s_;
};

}  // namespace conveyor::pipeline
