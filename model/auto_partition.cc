#include "model/auto_partition.h"

#include "common/error.h"
#include "model/piece_cost.h"

namespace conveyor::model {

// Why adding each block to the cheapest piece minimises the largest cost. Piece i costs
// e_i + n_i b (e_i its embedding or head, b a block). Let M be the largest cost at the end,
// reached by piece j. If piece j already cost M with its first block, every split costs at
// least M (every piece holds a block). Otherwise j reached M when it was the cheapest piece
// and got a block: then every piece i held n_i blocks with e_i + n_i b >= M - b. A split
// whose largest cost is below M gives each piece i fewer than (M - e_i) / b <= n_i + 1
// blocks, so at most the n_i it held then: fewer than the layers in all, since j was still
// to get one. So no split does better.
std::vector<int> auto_partition(const ModelConfig& config, int pieces) {
  CONVEYOR_REQUIRE(pieces >= 1, "the number of stages must be at least 1 (got {})", pieces);
  CONVEYOR_REQUIRE(pieces <= config.layers,
                   "--partition auto: {} pipeline pieces (stages x virtual stages) but only {} "
                   "layers; every piece needs at least one layer: use fewer "
                   "--stages/--virtual-stages or more --layers",
                   pieces, config.layers);
  // Per token (a micro-batch of one sequence): every cost scales with the micro-batch size
  // alike, so the split does not depend on it.
  const double block = block_work(config, 1).cost();
  std::vector<double> fixed(pieces, 0.0);
  fixed.front() += embedding_work(config, 1).cost();
  fixed.back() += head_work(config, 1).cost();

  std::vector<int> counts(pieces, 1);
  // A piece's cost is computed afresh from its count, never accumulated, so it is the same
  // number however the blocks arrived.
  auto cost = [&](int i) { return fixed[i] + counts[i] * block; };
  for (int placed = pieces; placed < config.layers; ++placed) {
    int cheapest = 0;
    for (int i = 1; i < pieces; ++i)
      if (cost(i) < cost(cheapest)) cheapest = i;  // strict: the lowest index wins a tie
    counts[cheapest] += 1;
  }
  return counts;
}

}  // namespace conveyor::model
