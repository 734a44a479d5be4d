#include "model/stage_model.h"

#include <algorithm>
#include <set>

#include "common/error.h"

namespace conveyor::model {

namespace {

std::vector<ParamSpec> parameters_for(const std::vector<ParamSpec>& table,
                                      const std::vector<ChunkSpec>& chunks) {
  std::set<int> layers;
  bool embedding = false, head = false;
  for (const auto& c : chunks) {
    for (int l = c.first_layer; l < c.first_layer + c.num_layers; ++l) layers.insert(l);
    embedding |= c.has_embedding;
    head |= c.has_head;
  }
  std::vector<ParamSpec> out;
  for (const auto& p : table) {
    bool mine = false;
    if (p.layer >= 0)
      mine = layers.contains(p.layer);
    else if (p.name == kWteWeight)
      mine = embedding || head;
    else if (p.name == kWpeWeight)
      mine = embedding;
    else
      mine = head;  // ln_f
    if (mine) out.push_back(p);
  }
  return out;
}

}  // namespace

std::vector<ParamSpec> stage_parameters(const ModelConfig& config,
                                        const std::vector<ChunkSpec>& chunks) {
  return parameters_for(parameter_table(config), chunks);
}

int chunk_of_parameter(const ParamSpec& p, const std::vector<ChunkSpec>& chunks) {
  for (size_t c = 0; c < chunks.size(); ++c) {
    const ChunkSpec& chunk = chunks[c];
    const bool mine = p.layer >= 0 ? p.layer >= chunk.first_layer &&
                                         p.layer < chunk.first_layer + chunk.num_layers
                      : p.name == kWpeWeight ? chunk.has_embedding
                      : p.name == kWteWeight ? chunk.has_embedding || chunk.has_head
                                             : chunk.has_head;  // ln_f
    // wte: the embedding's chunk when this stage has it (its gradient is in the store).
    if (mine && p.name == kWteWeight && !chunk.has_embedding) {
      bool embedding_here = false;
      for (const ChunkSpec& other : chunks) embedding_here |= other.has_embedding;
      if (embedding_here) continue;
    }
    if (mine) return static_cast<int>(c);
  }
  CONVEYOR_CHECK(false, "parameter {} is in none of this stage's chunks", p.name);
  return -1;
}

StageMemory StageModel::estimate_memory(const ModelConfig& config,
                                        const std::vector<ChunkSpec>& chunks, int micro_batch_size,
                                        int slots, const std::vector<bool>& moments_kept) {
  double weights = 0, moments = 0;
  const auto params = parameters_for(parameter_table(config), chunks);
  for (size_t i = 0; i < params.size(); ++i) {
    double n = 1;
    for (int64_t d : params[i].shape) n *= double(d);
    weights += n;
    if (moments_kept.empty() || moments_kept[i]) moments += n;
  }
  StageMemory m;
  m.parameters = weights * sizeof(float);
  m.gradients = m.parameters;
  m.optimizer = 2 * moments * sizeof(float);
  double largest_slot = 0;
  for (const ChunkSpec& c : chunks) {
    largest_slot = std::max(largest_slot, ModelChunk::slot_floats(config, c, micro_batch_size) * 4);
    m.scratch += ModelChunk::scratch_floats(config, c, micro_batch_size) * 4;
  }
  m.activations = double(slots) * largest_slot;
  return m;
}

StageModel::StageModel(kernels::Backend& backend, const ModelConfig& config,
                       std::vector<ChunkSpec> chunks, int micro_batch_size,
                       std::vector<bool> moments_kept)
    : config_(config), micro_batch_size_(micro_batch_size), global_table_(parameter_table(config)) {
  store_ = std::make_unique<ParamStore>(backend, parameters_for(global_table_, chunks),
                                        std::move(moments_kept));
  for (size_t i = 0; i < chunks.size(); ++i) {
    chunks_.push_back(std::make_unique<ModelChunk>(config, chunks[i], *store_, micro_batch_size));
    if (chunks[i].has_embedding) embedding_chunk_ = static_cast<int>(i);
    if (chunks[i].has_head) head_chunk_ = static_cast<int>(i);
  }
}

void StageModel::zero_grads() {
  store_->zero_grads();
  if (holds_head()) backend().zero(head_wte_grad().data(), head_wte_grad().bytes());
}

std::vector<double> StageModel::grad_sum_squares(const std::function<bool(int)>& counted) const {
  // Every counted tensor in one reduction: one wait for a device backend, not one per tensor.
  std::vector<size_t> at;  // global index of each tensor below
  std::vector<const float*> tensors;
  std::vector<size_t> sizes;
  for (size_t g = 0; g < global_table_.size(); ++g) {
    const auto& name = global_table_[g].name;
    if (!store_->has(name)) continue;
    if (name == kWteWeight && !holds_embedding()) continue;
    if (counted && !counted(store_->index(name))) continue;
    auto grad = store_->grad(store_->index(name));
    at.push_back(g);
    tensors.push_back(grad.data());
    sizes.push_back(grad.size());
  }
  std::vector<double> sums(tensors.size());
  backend().sums_of_squares(sums.data(), tensors.data(), sizes.data(), tensors.size());
  std::vector<double> out(global_table_.size(), 0.0);
  for (size_t i = 0; i < at.size(); ++i) out[at[i]] = sums[i];
  return out;
}

}  // namespace conveyor::model
