// The resume policy: whether a run may continue a checkpoint, as pure functions of the
// checkpoint's saved configuration (its manifest's "config") and this run's. StageCheckpoint
// (stage_checkpoint.h) reads the manifest, asks these, and logs or throws what they say.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "train/train_config.h"

namespace conveyor::pipeline {

// --resume as a mode: "auto" (the newest step of --ckpt-dir that verifies), "none" (start
// afresh) or a PATH. Without --resume: "auto" with --ckpt-dir, else "none".
std::string resume_mode(const TrainConfig& config);

// Every rank: the checkpoint's model must have this run's shape (the pipeline layout may
// differ: that is resharding). Throws Error(kUsage) naming the first field that differs and
// both values.
void require_same_model(const nlohmann::json& saved_config, const TrainConfig& run,
                        const std::string& chosen);

// What the coordinator says about continuing `chosen`.
struct ResumeVerdict {
  std::optional<Error> refusal;       // it may not (exit 2): other data or batch settings
  std::vector<std::string> warnings;  // it may, but the continuation may differ
};

// The batches a step samples depend on the micro-batch size, the global micro-batch count
// (--replicas x --microbatches) and the data (its identity, data_identity.h): a change of any
// is refused, or only warned about with --allow-data-change. A checkpoint that does not
// record one (an older conveyor) is warned about, as is a changed --seed or --steps.
// --stages, --replicas alone, --schedule and the rest may change freely.
ResumeVerdict judge_continuation(const nlohmann::json& saved_config, const TrainConfig& run,
                                 const nlohmann::json& run_data_identity,
                                 const std::string& chosen);

}  // namespace conveyor::pipeline
