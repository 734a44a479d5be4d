// The tied embedding's gradient: the embedding stage and the head stage each hold a copy of
// wte and each computes a gradient for it; both copies must get the same sum, in the same
// order, whatever the partition (docs/ARCHITECTURE.md, "One training step").
#pragma once

#include <cstdint>

#include "kernels/backend.h"
#include "model/stage_model.h"
#include "pipeline/schedule/topology.h"
#include "transport/transport.h"

namespace conveyor::pipeline {

// Sums the embedding's and the head's wte gradients, in that order, on every stage that holds
// a copy of wte, so both copies get the same bits whatever the partition. `other` is scratch
// for the peer's gradient (allocated once, by the caller: vocab x dim floats on a stage that
// holds exactly one of the two). Collective between the embedding and head stages of a
// replica; a no-op on the others.
void tie_embedding_gradients(model::StageModel& m, transport::Transport* t,
                             const Topology& topology, int rank, int64_t step,
                             kernels::Buffer<float>& other);

}  // namespace conveyor::pipeline
