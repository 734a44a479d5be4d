// What one stage process holds: its chunks (one, or v with the interleaved schedule) and one
// ParamStore with every parameter those chunks use.
//
// The stage holding the embedding owns wte.weight; the stage holding the head holds a copy
// (or shares the same entry when it is the same stage). Both copies receive the same summed
// gradient and the same update, so they stay bit-identical.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "model/chunk.h"
#include "model/config.h"
#include "model/param_store.h"
#include "model/partition.h"

namespace conveyor::model {

// What one stage will hold in memory, in bytes, estimated from the shapes alone (double:
// absurd sizes estimate to a huge number instead of overflowing).
struct StageMemory {
  double parameters = 0;   // this stage's weights
  double gradients = 0;    // one per weight
  double optimizer = 0;    // AdamW's two moments per weight
  double activations = 0;  // `slots` activation slots (of the largest chunk)
  double scratch = 0;      // per-chunk scratch, the head's logits and its wte gradient
  double total() const { return parameters + gradients + optimizer + activations + scratch; }
};

// The parameters a stage running `chunks` holds, in global table order (its store's order).
std::vector<ParamSpec> stage_parameters(const ModelConfig& config,
                                        const std::vector<ChunkSpec>& chunks);
// Which of `chunks` computes p's gradient into the store: the chunk holding its layer; wpe the
// embedding's; ln_f the head's; wte the embedding's when the stage has it, else the head's
// (whose wte gradient is kept apart, see head_wte_grad()).
int chunk_of_parameter(const ParamSpec& p, const std::vector<ChunkSpec>& chunks);

class StageModel {
 public:
  // The memory a StageModel of these arguments will allocate, with `slots` activation slots
  // in use at once (over all its chunks; the schedule's bound) and moments for the parameters
  // `moments_kept` marks (stage_parameters() order; empty: all).
  static StageMemory estimate_memory(const ModelConfig& config,
                                     const std::vector<ChunkSpec>& chunks, int micro_batch_size,
                                     int slots, const std::vector<bool>& moments_kept = {});

  // `chunks`: the specs of the pieces this stage runs, in chunk order (chunk 0 first).
  // `backend` runs every op and allocates every buffer; it must outlive the model.
  // `moments_kept`: see ParamStore (ZeRO-1 keeps moments for this replica's parameters only).
  StageModel(kernels::Backend& backend, const ModelConfig& config, std::vector<ChunkSpec> chunks,
             int micro_batch_size, std::vector<bool> moments_kept = {});

  const ModelConfig& config() const { return config_; }
  int micro_batch_size() const { return micro_batch_size_; }
  ParamStore& store() { return *store_; }
  kernels::Backend& backend() const { return store_->backend(); }
  int num_chunks() const { return static_cast<int>(chunks_.size()); }
  ModelChunk& chunk(int c) { return *chunks_[c]; }
  bool holds_embedding() const { return embedding_chunk_ >= 0; }
  bool holds_head() const { return head_chunk_ >= 0; }
  ModelChunk& head_chunk() { return *chunks_[head_chunk_]; }

  // The head's wte gradient (summed over micro-batches); REQUIRES holds_head().
  kernels::Buffer<float>& head_wte_grad() { return chunks_[head_chunk_]->head_wte_grad(); }
  // Zeroes all gradients, the head's wte gradient included.
  void zero_grads();

  // Per-parameter sums of squares of the gradients, indexed by the global parameter table
  // (zero for parameters held elsewhere; wte counted only by the embedding holder; with
  // `counted`, only store parameters i with counted(i): the ones this replica owns), so that
  // an element-wise sum over ranks followed by global_norm() is partition-independent.
  std::vector<double> grad_sum_squares(const std::function<bool(int)>& counted = {}) const;

 private:
  ModelConfig config_;
  int micro_batch_size_;
  std::unique_ptr<ParamStore> store_;
  std::vector<std::unique_ptr<ModelChunk>> chunks_;
  std::vector<ParamSpec> global_table_;
  int embedding_chunk_ = -1;
  int head_chunk_ = -1;
};

}  // namespace conveyor::model
