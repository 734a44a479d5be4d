// The pieces a training session is built from (session.h): the configuration resolved
// against the launch, this stage's chunks, buckets and kernel threads, the checks that must
// fail before any peer is waited for, and the data a stage reads. Each is a plain function of
// the configuration and the stage's place, so build() reads as a list of them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "kernels/device.h"
#include "model/partition.h"
#include "model/stage_model.h"
#include "pipeline/parallel/gradient_buckets.h"
#include "pipeline/schedule/schedule.h"
#include "pipeline/schedule/topology.h"
#include "train/train_config.h"
#include "transport/transport.h"

namespace conveyor::pipeline {

// The configuration with --replicas resolved from the world size (0: world / --stages), after
// checking that the world is --replicas x --stages processes.
TrainConfig with_replicas_resolved(const TrainConfig& given, const transport::Options& launched);

// Outputs written at the end (--trace, --metrics) must fail now, not after the last step.
void require_outputs_writable(const TrainConfig& config);

// This stage's pieces of the model, in chunk order.
std::vector<model::ChunkSpec> my_chunks(const TrainConfig& c, const Topology& topology, int stage);

// Kernel threads per process: --threads, else this host's cores shared by the stages.
int kernel_threads(const TrainConfig& c);

// This stage's gradient buckets (gradient_buckets.h), in the order the schedule finishes them.
BucketPlan plan_stage_buckets(const TrainConfig& c, const std::vector<model::ChunkSpec>& chunks,
                              const Schedule& schedule, int stage);

// Logs what this stage will hold, and refuses (exit 2) a stage whose model, optimizer state
// (the moments this replica keeps: a 1/replicas share with ZeRO-1, `moments_kept`) and
// activations at the schedule's peak (`inflight` micro-batches, plus the receive posted ahead)
// do not fit in the memory this host has available, or with --device cuda in the memory of
// this rank's GPU (`gpu`; its total: ranks sharing the GPU are not added up).
void require_memory_fits(const TrainConfig& c, const std::vector<model::ChunkSpec>& chunks,
                         int inflight, const std::vector<bool>& moments_kept, int rank,
                         const Topology& topology, const kernels::Gpu* gpu);

// How many times `conveyor launch --max-restarts` restarted the job before this attempt.
int restart_count_from_env();

// --init-from: this stage's parameters from an outside model of the same shape.
void load_initial_weights(const TrainConfig& config, model::StageModel& model);

// The training data, on the stages that read tokens or targets (nothing elsewhere). Fails now,
// not at the first step, when the data is shorter than one window.
std::optional<data::Dataset> open_training_data(const TrainConfig& config,
                                                const model::StageModel& model, bool log);

// --val-data, opened on the stages that read tokens or targets, and the number of windows to
// score (0 without --val-data). Collective with a transport: a stage without the data learns
// the window count from the reporter's.
struct ValidationData {
  std::optional<data::Dataset> data;
  int64_t windows = 0;
};
ValidationData open_validation_data(const TrainConfig& config, const model::StageModel& model,
                                    const Topology& topology, transport::Transport* transport,
                                    bool log);

// The run's shape in the log (the coordinator calls it once).
void log_run(const TrainConfig& config, const Topology& topology, const std::string& device);

}  // namespace conveyor::pipeline
