// The predicted cost of one pipeline piece's work on one micro-batch: the cost model behind
// `--partition auto` (model/auto_partition.h) and the costs `conveyor schedule --partition`
// prints. A model of the shape alone, never a measurement, so every rank and every run gets
// the same answer.
//
// What is counted, per token, for a micro-batch's forward and backward (F, B and W):
//
//   FLOPs, the matmuls, by model/flops.h (the one formula, shared with MFU):
//     block      6 x (12 d^2 + 13 d) + 12 d T
//     head       6 V d                       (logits = x wte^T and its two gradients)
//     embedding  0                           (a gather forward, a scatter-add backward)
//   bytes, the float32 traffic of every op that is not a matmul, each reading its inputs and
//   writing its outputs once, as model/chunk.cc runs them (LayerNorm, GELU, residual adds,
//   the attention softmax over T per head, the cross-entropy over the vocabulary, the
//   zero-fills and copies of the backward, the embedding's gather and scatter-add):
//     block      4 x (73 d + 5 H T)          (F 18 d + 2 H T, B 42 d + 3 H T, W 13 d)
//     head       4 x (11 V + 12 d)           (ln_f, softmax and cross-entropy over V)
//     embedding  4 x 8 d
//
// with d = --dim, T = --seq, H = --heads, V = --vocab, times micro-batch size x T tokens.
// cost = FLOPs + kFlopsPerByte x bytes, in FLOP-equivalents: the time of a device that does
// kFlopsPerByte FLOPs in the time it moves a byte. The bytes matter where the model is narrow:
// at d 64 the cross-entropy over 50257 tokens costs about half as much as the head's matmul.
//
// Not counted: the per-step work (AdamW, the tied-gradient exchange, the gradient
// all-reduce), sends and receives, and the time a kernel call costs whatever its size. All
// of these are small beside a micro-batch's compute at the sizes that train.
//
// Deterministic: every quantity is a product and sum of whole numbers, exact in a double
// below 2^53 (any shape short of the extremes ModelConfig allows), so the same on every
// machine and every build. Pure; thread-safe.
#pragma once

#include "model/config.h"
#include "model/partition.h"

namespace conveyor::model {

// The device balance the cost assumes: FLOPs per byte moved. 4 is what the CPU backend does
// on the development machine (OpenBLAS sgemm against the element-wise loops): with it the
// predicted time of the head over a block's is within 10% of the measured one from d 128 up
// (docs/BENCHMARKS.md, "Partition"). A GPU in fp32 is nearer 20; the split moves little
// with it, since the matmuls dominate wherever d is in the hundreds. It weighs the bytes
// against the FLOPs; it is not any device's peak.
inline constexpr double kFlopsPerByte = 4;

struct PieceWork {
  double flops = 0;  // model FLOPs (matmuls)
  double bytes = 0;  // float32 traffic of the other ops

  double cost() const { return flops + kFlopsPerByte * bytes; }
  PieceWork& operator+=(const PieceWork& o) {
    flops += o.flops;
    bytes += o.bytes;
    return *this;
  }
};

// One transformer block, the embedding (wte + wpe), the head (ln_f, the tied matmul and the
// cross-entropy), each for one micro-batch of micro_batch_size x seq tokens, F + B + W.
// REQUIRES a validated config and micro_batch_size >= 1.
PieceWork block_work(const ModelConfig& config, int micro_batch_size);
PieceWork embedding_work(const ModelConfig& config, int micro_batch_size);
PieceWork head_work(const ModelConfig& config, int micro_batch_size);

// A piece's work: its blocks, plus the embedding and the head when it holds them.
PieceWork piece_work(const ModelConfig& config, const ChunkSpec& piece, int micro_batch_size);

}  // namespace conveyor::model
