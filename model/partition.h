// Cutting the model's blocks into contiguous pieces, one per virtual stage.
//
// With p stages and v virtual stages per stage there are p*v pieces ("chunks"); virtual
// stage vs = chunk * p + stage holds the vs-th piece (round-robin, as Megatron's
// interleaved schedule). Piece 0 also holds wte/wpe (the embedding), the last piece ln_f
// and the head (tied to wte).
#pragma once

#include <string>
#include <vector>

#include "model/config.h"

namespace conveyor::model {

struct ChunkSpec {
  int virtual_stage = 0;
  int first_layer = 0;
  int num_layers = 0;
  bool has_embedding = false;
  bool has_head = false;
};

// Balanced block counts for n pieces: every piece gets layers/n, the remainder goes to
// the first pieces. Throws Error(kUsage) when there are more pieces than blocks.
std::vector<int> default_partition(int layers, int pieces);

// Parses "3,3,2,2". Throws Error(kUsage) when it has the wrong number of entries, does not
// sum to `layers`, or gives a piece no block.
std::vector<int> parse_partition(const std::string& text, int layers, int pieces);

// What --partition asks for: "" the default above, "auto" the cost-balanced split
// (model/auto_partition.h), anything else a list for parse_partition. The one place that
// turns the flag into counts (train, its start-up check, `conveyor schedule`). Whatever the
// source, the counts are checked to place each of config.layers blocks exactly once, in
// `pieces` non-empty pieces; Error(kUsage) otherwise. REQUIRES a validated config.
std::vector<int> resolve_partition(const std::string& text, const ModelConfig& config, int pieces);

// Chunk specs of all pieces, in virtual stage order.
std::vector<ChunkSpec> chunk_specs(const std::vector<int>& counts);

}  // namespace conveyor::model
