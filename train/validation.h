// Validation loss during training (`--val-data FILE --eval-every N`), through the pipeline.
//
// Scores the first `windows` non-overlapping windows of the validation data (window i: inputs
// tokens[i*T .. i*T+T-1], targets one further), the same windows `conveyor eval --max-windows`
// scores, in batches of the micro-batch size (a last, smaller batch has its own chunk). The
// result is the mean over windows of each window's mean cross-entropy; it depends only on the
// weights and the data, not on the number of stages. Forward only: no gradient is touched.
#pragma once

#include <cstdint>
#include <optional>

#include "data/dataset.h"
#include "infer/generate.h"
#include "model/stage_model.h"

namespace conveyor::pipeline {

// Collective over the replica's ranks (every one calls it with the same `windows` and
// `step`). `data` is needed on the ranks holding the embedding or the head (null elsewhere).
// REQUIRES 1 <= windows <= data's window count. Returns the loss on every rank, or nothing
// when a rank was asked to stop (stop_request.h) before the last batch: all ranks give up
// together, and the caller saves without waiting for the rest.
std::optional<double> validation_loss(model::StageModel& model, const PipelinePlace& place,
                                      const data::Dataset* data, int64_t windows, int64_t step);

}  // namespace conveyor::pipeline
