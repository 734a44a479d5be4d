#include "model/partition.h"

#include <numeric>
#include <sstream>

#include "common/error.h"

namespace conveyor::model {

std::vector<int> default_partition(int layers, int pieces) {
  CONVEYOR_REQUIRE(pieces >= 1, "the number of stages must be at least 1 (got {})", pieces);
  CONVEYOR_REQUIRE(pieces <= layers,
                   "{} pipeline pieces (stages x virtual stages) but only {} layers: every piece "
                   "needs at least one layer; use fewer --stages/--virtual-stages or more --layers",
                   pieces, layers);
  std::vector<int> counts(pieces, layers / pieces);
  for (int i = 0; i < layers % pieces; ++i) counts[i] += 1;
  return counts;
}

std::vector<int> parse_partition(const std::string& text, int layers, int pieces) {
  std::vector<int> counts;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      int n = std::stoi(item, &used);
      CONVEYOR_REQUIRE(used == item.size(), "--partition '{}': '{}' is not a whole number", text,
                       item);
      counts.push_back(n);
    } catch (const std::logic_error&) {
      throw Error(ErrorKind::kUsage,
                  fmt::format("--partition '{}': '{}' is not a whole number", text, item),
                  "give the layer count of each stage, e.g. --partition 3,3,2,2");
    }
  }
  CONVEYOR_REQUIRE(static_cast<int>(counts.size()) == pieces,
                   "--partition '{}' has {} entries but the pipeline has {} pieces (stages x "
                   "virtual stages); give one layer count per piece",
                   text, counts.size(), pieces);
  for (size_t i = 0; i < counts.size(); ++i) {
    CONVEYOR_REQUIRE(counts[i] >= 1,
                     "--partition '{}' gives piece {} no layer; every piece needs at least one",
                     text, i);
  }
  int sum = std::accumulate(counts.begin(), counts.end(), 0);
  CONVEYOR_REQUIRE(sum == layers,
                   "--partition '{}' sums to {} but the model has {} layers (--layers); the "
                   "entries must add up to the layer count",
                   text, sum, layers);
  return counts;
}

std::vector<ChunkSpec> chunk_specs(const std::vector<int>& counts) {
  std::vector<ChunkSpec> specs;
  int first = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    ChunkSpec s;
    s.virtual_stage = static_cast<int>(i);
    s.first_layer = first;
    s.num_layers = counts[i];
    s.has_embedding = i == 0;
    s.has_head = i + 1 == counts.size();
    specs.push_back(s);
    first += counts[i];
  }
  return specs;
}

}  // namespace conveyor::model
