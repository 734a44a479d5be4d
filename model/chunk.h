// ModelChunk: a contiguous range of GPT-2 blocks (plus the embedding on the first chunk and
// ln_f + tied head on the last) that runs forward and backward of one micro-batch.
//
// A stage process holds one chunk (or v chunks with the interleaved schedule). The whole
// model is the one-chunk case. Backward is split the zero-bubble way:
//   backward_input  (B): gradient w.r.t. the chunk's input; stashes what W needs;
//   backward_weight (W): accumulates weight gradients into the ParamStore.
// Running B then W at once is plain backward. Weight gradients are only ever summed by W, in
// the order the caller runs W over micro-batches (ascending, by the schedules' rule).
//
// Activations of one micro-batch live in a Slot, which the caller keeps from F until W is
// done, so several micro-batches can be in flight (the pipeline schedule decides how many).
// The head's wte gradient is accumulated into head_wte_grad(), never into the store's
// wte gradient: the embedding and head contributions are added once per step in a fixed
// order (see tie_embedding_gradients), so the sum is the same bits for any stage count.
//
// Every op runs through the store's compute backend; slots, scratch and the head's wte
// gradient are allocated through it too, so they live where the parameters live.
//
// Thread safety: none; one thread drives a chunk.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "kernels/backend.h"
#include "model/config.h"
#include "model/param_store.h"
#include "model/partition.h"

namespace conveyor::model {

class ModelChunk;

// Per-micro-batch activations and gradient stash of one chunk. Created by
// ModelChunk::make_slot(); reusable for another micro-batch after W is done.
class Slot {
 public:
  int32_t* tokens() { return tokens_.data(); }    // [N] (first chunk)
  int32_t* targets() { return targets_.data(); }  // [N] (last chunk)
  float* input() { return input_; }               // [N,C] chunk input (activation received)
  float* output() { return output_; }             // [N,C] chunk output (to send on)
  float* input_grad() { return input_grad_; }     // [N,C] result of backward_input
  float* output_grad() { return output_grad_; }   // [N,C] gradient received for output
  float loss() const { return loss_; }            // mean loss of this micro-batch (last chunk)
  const float* probs() const { return probs_; }   // [N,V] next-token probabilities (last chunk)
  size_t activation_bytes() const { return buffer_.bytes(); }
  // The bytes that cross the wire: input, output, input_grad and output_grad, contiguous at
  // the start of the activation buffer, registered with the transport once. Four [N,C]
  // tensors, where every block alone keeps about 25 [N,C] and its attention [B,NH,T,T]: a
  // transport that stages device memory through host memory mirrors only these.
  void* wire_memory() { return buffer_.data(); }
  size_t wire_bytes() const { return wire_bytes_; }
  kernels::MemoryType memory_type() const { return buffer_.memory_type(); }

 private:
  friend class ModelChunk;
  kernels::Buffer<float> buffer_;  // host huge pages on cpu: the transport copies from it
  kernels::Buffer<int32_t> tokens_, targets_;
  float* input_ = nullptr;
  float* output_ = nullptr;
  float* input_grad_ = nullptr;
  float* output_grad_ = nullptr;
  float* probs_ = nullptr;
  size_t wire_bytes_ = 0;
  float loss_ = 0;
};

class ModelChunk {
 public:
  // REQUIRES: config validated; `store` holds every parameter this chunk uses (and outlives
  // the chunk). micro_batch_size >= 1.
  ModelChunk(const ModelConfig& config, const ChunkSpec& spec, ParamStore& store,
             int micro_batch_size);
  ~ModelChunk();

  const ChunkSpec& spec() const { return spec_; }
  std::unique_ptr<Slot> make_slot() const;

  // What make_slot() and the constructor's scratch allocate, in floats, computed in double
  // before anything is allocated (StageModel::estimate_memory).
  static double slot_floats(const ModelConfig& config, const ChunkSpec& spec, int micro_batch_size);
  static double scratch_floats(const ModelConfig& config, const ChunkSpec& spec,
                               int micro_batch_size);

  // F: first chunk reads slot.tokens(), others slot.input(). Writes slot.output(), or, on
  // the last chunk, the loss (reads slot.targets()).
  void forward(Slot& slot);
  // B: last chunk starts from the loss (scaled by loss_scale, usually 1/(tokens per step));
  // others from slot.output_grad(). Writes slot.input_grad() (except on the first chunk).
  void backward_input(Slot& slot, float loss_scale);
  // W: accumulates this micro-batch's weight gradients into the store (and head_wte_grad).
  // `done`, when given, is called as the gradients become final in the order W computes them
  // (the head, each block from the last, the embedding), with the lowest store index of the
  // parameters just finished: every parameter of this chunk from that index on is then done
  // for this slot. The data-parallel all-reduce starts buckets from it on the step's last W.
  void backward_weight(Slot& slot, const std::function<void(int first_done_param)>& done = {});

  // The head's share of the wte gradient (last chunk only), summed over micro-batches.
  kernels::Buffer<float>& head_wte_grad() { return head_wte_grad_; }

 private:
  struct Layout;
  struct LayerParams;
  void layer_forward(int l, Slot& slot, const float* x_in);
  void layer_backward_input(int l, Slot& slot, const float* x_in, float* dres);
  void layer_backward_weight(int l, Slot& slot, const float* x_in);
  const float* layer_input(int l, Slot& slot);

  ModelConfig config_;
  ChunkSpec spec_;
  ParamStore& store_;
  kernels::Backend& k_;
  int B_, T_, C_, NH_, V_, N_;
  std::unique_ptr<Layout> layout_;
  std::vector<LayerParams> layers_;
  // Scratch shared by all slots (not needed between F and B).
  kernels::Buffer<float> scratch_nc_, scratch_nc2_, scratch_n4c_, scratch_att_, scratch_logits_;
  kernels::Buffer<float> head_wte_grad_;
};

}  // namespace conveyor::model
