#include "model/stage_model.h"

#include <algorithm>

#include <set>

namespace conveyor::model {

namespace {

// The parameters a set of chunks needs, in global table order.
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

StageMemory StageModel::estimate_memory(const ModelConfig& config,
                                        const std::vector<ChunkSpec>& chunks, int micro_batch_size,
                                        int slots) {
  double weights = 0;
  for (const ParamSpec& p : parameters_for(parameter_table(config), chunks)) {
    double n = 1;
    for (int64_t d : p.shape) n *= double(d);
    weights += n;
  }
  StageMemory m;
  m.parameters = weights * sizeof(float);
  m.gradients = m.parameters;
  m.optimizer = 2 * m.parameters;
  double largest_slot = 0;
  for (const ChunkSpec& c : chunks) {
    largest_slot = std::max(largest_slot, ModelChunk::slot_floats(config, c, micro_batch_size) * 4);
    m.scratch += ModelChunk::scratch_floats(config, c, micro_batch_size) * 4;
  }
  m.activations = double(slots) * largest_slot;
  return m;
}

StageModel::StageModel(kernels::Backend& backend, const ModelConfig& config,
                       std::vector<ChunkSpec> chunks, int micro_batch_size)
    : config_(config), micro_batch_size_(micro_batch_size), global_table_(parameter_table(config)) {
  store_ = std::make_unique<ParamStore>(backend, parameters_for(global_table_, chunks));
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

std::vector<double> StageModel::grad_sum_squares() const {
  std::vector<double> out(global_table_.size(), 0.0);
  for (size_t g = 0; g < global_table_.size(); ++g) {
    const auto& name = global_table_[g].name;
    if (!store_->has(name)) continue;
    if (name == kWteWeight && !holds_embedding()) continue;
    auto grad = store_->grad(store_->index(name));
    out[g] = backend().sum_of_squares(grad.data(), grad.size());
  }
  return out;
}

}  // namespace conveyor::model
