#include "launcher/partition_costs.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "launcher/cli_number.h"
#include "model/partition.h"
#include "model/piece_cost.h"

namespace conveyor::cli {
namespace {

std::string joined(const std::vector<int>& counts) {
  return fmt::format("{}", fmt::join(counts, ","));
}

// The stages' costs of `counts`, placed by `layout`.
std::vector<double> stage_costs(const PartitionOptions& o, const std::vector<int>& counts,
                                const pipeline::Topology& layout) {
  std::vector<double> cost(layout.stages, 0.0);
  for (const model::ChunkSpec& piece : model::chunk_specs(counts))
    cost[layout.stage_of(piece.virtual_stage)] +=
        model::piece_work(o.model, piece, o.micro_batch_size).cost();
  return cost;
}

double max_over_min(const std::vector<double>& costs) {
  const auto [lo, hi] = std::minmax_element(costs.begin(), costs.end());
  return *hi / *lo;  // every piece holds a block, so no cost is 0
}

const char* holds(const model::ChunkSpec& piece) {
  if (piece.has_embedding && piece.has_head) return "embedding, head";
  if (piece.has_embedding) return "embedding";
  if (piece.has_head) return "head";
  return "";
}

}  // namespace

void add_partition_options(CLI::App& sub, PartitionOptions& o) {
  const int most = std::numeric_limits<int>::max();
  sub.add_option("--partition", o.partition,
                 "also print the layers and predicted cost of each piece and stage for this "
                 "partition: auto (cost-balanced) or a list such as 3,3,2,2, as train takes it");
  sub.add_option("--layers", o.model.layers, "with --partition: transformer blocks")
      ->capture_default_str()
      ->transform(integer_in(1, model::kMaxLayers, "layers"));
  sub.add_option("--heads", o.model.heads, "with --partition: attention heads")
      ->capture_default_str()
      ->transform(integer_in(1, model::kMaxDim, "heads"));
  sub.add_option("--dim", o.model.dim, "with --partition: model width")
      ->capture_default_str()
      ->transform(integer_in(1, model::kMaxDim, "dimensions"));
  sub.add_option("--seq", o.model.seq, "with --partition: context length in tokens")
      ->capture_default_str()
      ->transform(integer_in(1, most, "tokens"));
  sub.add_option("--vocab", o.model.vocab, "with --partition: vocabulary size")
      ->capture_default_str()
      ->transform(integer_in(2, 65536, "tokens"));
  sub.add_option("--micro-batch-size", o.micro_batch_size,
                 "with --partition: sequences per micro-batch (scales every cost alike)")
      ->capture_default_str()
      ->transform(integer_in(1, most, "sequences"));
}

std::string render_partition_costs(const PartitionOptions& o, const pipeline::Topology& layout) {
  if (o.partition.empty()) return {};
  o.model.validate();
  const int pieces = layout.num_virtual_stages();
  const std::vector<int> counts = model::resolve_partition(o.partition, o.model, pieces);
  const auto& m = o.model;

  std::string out = fmt::format(
      "\npartition {}: {} layers per piece ({} layers, dim {}, {} heads, seq {}, vocab {}, "
      "micro-batch {})\n",
      o.partition, joined(counts), m.layers, m.dim, m.heads, m.seq, m.vocab, o.micro_batch_size);
  out += fmt::format(
      "predicted work of one micro-batch, F + B + W: GFLOP of the matmuls, GB moved by the other "
      "ops, cost = GFLOP + {:g} x GB\n",
      model::kFlopsPerByte);
  out += fmt::format("{:<6} {:>5} {:>9}  {:<16}{:>12} {:>10} {:>12}\n", "piece", "stage", "layers",
                     "also", "GFLOP", "GB", "cost");
  for (const model::ChunkSpec& piece : model::chunk_specs(counts)) {
    const model::PieceWork w = model::piece_work(m, piece, o.micro_batch_size);
    out += fmt::format(
        "{:<6} {:>5} {:>9}  {:<16}{:>12.4f} {:>10.4f} {:>12.4f}\n", piece.virtual_stage,
        layout.stage_of(piece.virtual_stage),
        fmt::format("{}-{}", piece.first_layer, piece.first_layer + piece.num_layers - 1),
        holds(piece), w.flops * 1e-9, w.bytes * 1e-9, w.cost() * 1e-9);
  }
  const std::vector<double> costs = stage_costs(o, counts, layout);
  const double top = *std::max_element(costs.begin(), costs.end());
  out += fmt::format("{:<6} {:>12} {:>10}\n", "stage", "cost", "of max");
  for (int s = 0; s < layout.stages; ++s)
    out += fmt::format("{:<6} {:>12.4f} {:>10.3f}\n", s, costs[s] * 1e-9, costs[s] / top);
  out += fmt::format("stage cost max/min {:.3f}", max_over_min(costs));
  // The layer-balanced default beside it, when it is another split: what auto gains.
  const std::vector<int> balanced = model::default_partition(m.layers, pieces);
  if (balanced != counts)
    out += fmt::format(" (the layer-balanced {}: {:.3f})", joined(balanced),
                       max_over_min(stage_costs(o, balanced, layout)));
  return out + "\n";
}

}  // namespace conveyor::cli
