// The model FLOPs of training, for MFU (model FLOPs utilisation). The formulas, stated here
// only (docs/DESIGN.md's metrics and docs/BENCHMARKS.md refer to them):
//
//   training FLOPs per token = 6 N + 12 L d T
//   MFU = tokens/s of the whole job x training FLOPs per token / (ranks x peak FLOP/s of one
//         rank's device)
//
// N counts every parameter (the tied embedding once: its matmul in the head is real work),
// 6 N is a forward (2 N) and a backward (4 N) multiply-add per weight, and 12 L d T is
// attention's two T x T products (QK^T and AV) over L layers, forward and backward
// (PaLM appendix B and nanoGPT's estimate_mfu; llm.c counts attention as 6 L d T). Model FLOPs
// exclude recomputation: a run that recomputes activations does more work for the same MFU.
// The peak is dense (no sparsity) and of the precision the run computes in; every rank is
// counted, so a pipeline's bubble and idle replicas lower MFU. train/mfu.h computes it for the
// metrics and says where the peak comes from.
//
// The same total by part, which the partition's cost model (model/piece_cost.h) reuses:
//
//   6 N + 12 L d T = L x block + head + 6 (T d + 2 d)
//   block = 6 x (12 d^2 + 13 d) + 12 d T   (a block's parameters, and its attention)
//   head  = 6 V d                           (the tied matmul logits = x wte^T)
//
// and 6 (T d + 2 d) for wpe and ln_f, counted as parameters by the convention above. Every
// term is a product of whole numbers, exact in a double for any shape ModelConfig accepts
// short of the largest, so the result is the same on every machine. Pure.
#pragma once

#include "model/config.h"

namespace conveyor::model {

double training_flops_per_token(const ModelConfig& config);

// One transformer block's model FLOPs per token, forward and backward (F + B + W).
double block_training_flops_per_token(const ModelConfig& config);

// The head's matmul (logits and its two gradients) per token, forward and backward.
double head_training_flops_per_token(const ModelConfig& config);

}  // namespace conveyor::model
