// `--partition auto`: the blocks per piece that make the pieces' predicted costs
// (model/piece_cost.h) as even as a split into whole blocks allows, counting the embedding on
// piece 0 and the head (its matmul and the cross-entropy over the vocabulary) on the last.
//
// The rule: every piece gets one block (no piece may be empty), then each further block goes
// to the piece that is cheapest at that moment, the lowest-numbered one on a tie. Since every
// block costs the same, this minimises the largest piece cost exactly (auto_partition.cc
// says why); among the splits that do, it is the one this rule reaches, so the answer
// depends on the shape and the piece count alone: the same on every rank and every run.
//
// The cost of a piece is per token, so the micro-batch size does not change the split. With
// several pieces per stage (interleaved, zb-v, dualpipe-v) it balances the pieces, each of
// which a micro-batch passes through in turn; a stage's cost is the sum of its pieces'.
// Pure; thread-safe.
#pragma once

#include <vector>

#include "model/config.h"

namespace conveyor::model {

// Block counts of `pieces` contiguous pieces, in piece order; they sum to config.layers and
// each is at least 1. Throws Error(kUsage) when there are more pieces than blocks.
// REQUIRES a validated config.
std::vector<int> auto_partition(const ModelConfig& config, int pieces);

}  // namespace conveyor::model
