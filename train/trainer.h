// The training loop of one stage process: build this stage's part of the model, run the
// schedule for each step, tie the embedding gradients, clip by the global norm, update, and
// report (the stage holding the head writes metrics and prints progress).
#pragma once

#include <memory>

#include "pipeline/runtime/executor.h"
#include "train/train_config.h"

namespace conveyor::pipeline {

struct TrainSummary {
  int64_t steps_done = 0;
  float first_loss = 0;
  float last_loss = 0;
  bool stopped_on_request = false;  // SIGTERM/SIGUSR1 (stop_request.h): exit kExitPreempted
  bool stop_seen = false;           // asked to stop, perhaps only after the last step
};

// Ways for benchmarks and tests to look into a run (none is needed to train).
struct TrainHooks {
  ComputeHook after_compute;  // see executor.h; `conveyor bench schedule` sleeps in it
};

// Runs `conveyor train` in this process. With config.stages > 1 this process is one rank of
// a job started by `conveyor launch` (RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT/
// CONVEYOR_JOB_TOKEN in the environment). Throws Error on failure.
TrainSummary train(const TrainConfig& config, const TrainHooks& hooks = {});

}  // namespace conveyor::pipeline
