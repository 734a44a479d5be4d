// One forward pass of one batch through every piece of the pipeline, outside the training
// schedule: generation (a batch of one window per token) and validation (batches of
// windows) use it.
//
// Pieces run in virtual-stage order. The rank holding virtual stage 0 fills the first
// chunk's slot (tokens); each later piece receives the previous piece's activations (a local
// copy when the same rank holds both); the rank holding the last piece calls `at_head` with
// the last chunk's slot once its forward (and loss, when it has targets) is done. Messages
// carry `tag` with virtual_stage set to the receiving piece. Every wait has the peer
// deadline. Collective: every rank of the replica calls it with the same `tag`.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "infer/generate.h"
#include "model/chunk.h"
#include "pipeline/runtime/message_tag.h"

namespace conveyor::pipeline {

// This rank's chunks (in chunk order), one slot for each, and the size of the activations
// one piece sends the next (rows x dim floats).
struct ForwardChunks {
  kernels::Backend* backend = nullptr;
  std::vector<model::ModelChunk*> chunks;
  std::vector<model::Slot*> slots;
  size_t message_bytes = 0;
};

void forward_through_pipeline(const PipelinePlace& place, const ForwardChunks& mine, MessageTag tag,
                              const std::function<void(model::Slot&)>& load_first,
                              const std::function<void(model::Slot&)>& at_head);

}  // namespace conveyor::pipeline
