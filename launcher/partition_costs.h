// `conveyor schedule --partition auto|3,3,2,2`: the model shape the partition's costs need
// (train's flags and defaults) and the block printed after the per-stage table, which shows
// the blocks of each piece and each piece's and each stage's predicted cost
// (model/piece_cost.h), with the largest over the smallest stage cost. Pure: no model is
// built. The partition is resolved as `conveyor train` resolves it
// (model::resolve_partition), so what is printed is what train would run; a partition that
// train refuses is refused here too, with the same message (Error(kUsage), exit 2).
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "model/config.h"
#include "pipeline/schedule/topology.h"
#include "train/train_config.h"

namespace conveyor::cli {

struct PartitionOptions {
  model::ModelConfig model;  // --layers --heads --dim --seq --vocab, train's defaults
  int micro_batch_size = pipeline::TrainConfig{}.micro_batch_size;  // --micro-batch-size
  std::string partition;  // --partition; empty: print nothing
};

// Registers --layers, --heads, --dim, --seq, --vocab, --micro-batch-size and --partition.
void add_partition_options(CLI::App& sub, PartitionOptions& options);

// The block, ending in a newline; "" when --partition was not given. `layout` places the
// pieces on stages (the schedule's). Throws Error(kUsage) for an impossible model shape or
// a partition train would refuse.
std::string render_partition_costs(const PartitionOptions& options,
                                   const pipeline::Topology& layout);

}  // namespace conveyor::cli
