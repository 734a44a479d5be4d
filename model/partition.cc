#include "model/partition.h"

#include <cstdint>
#include <numeric>
#include <sstream>

#include "common/error.h"
#include "model/auto_partition.h"

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
                  "give the layer count of each stage, e.g. --partition 3,3,2,2, or "
                  "--partition auto for a cost-balanced split");
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

std::vector<int> resolve_partition(const std::string& text, const ModelConfig& config, int pieces) {
  const std::vector<int> counts = text.empty()     ? default_partition(config.layers, pieces)
                                  : text == "auto" ? auto_partition(config, pieces)
                                                   : parse_partition(text, config.layers, pieces);
  // Each source keeps these rules itself; checked once more here, where every partition
  // passes, so none that loses or duplicates a layer reaches the model. Pieces are
  // contiguous (chunk_specs), so non-empty counts that sum to the layers place each once.
  const std::string named = text.empty() ? "the default partition" : "--partition " + text;
  CONVEYOR_REQUIRE(static_cast<int>(counts.size()) == pieces,
                   "{} has {} pieces but the pipeline has {}", named, counts.size(), pieces);
  int64_t placed = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    CONVEYOR_REQUIRE(counts[i] >= 1, "{} gives piece {} no layer; every piece needs at least one",
                     named, i);
    placed += counts[i];
  }
  CONVEYOR_REQUIRE(placed == config.layers,
                   "{} places {} layers but the model has {} (--layers); every layer must be "
                   "placed exactly once",
                   named, placed, config.layers);
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
