// The model FLOPs of training, for MFU (model FLOPs utilisation: achieved model FLOP/s over the
// device's peak). One formula, stated here and in docs/BENCHMARKS.md:
//
//   training FLOPs per token = 6 N + 12 L d T
//
// N counts every parameter (the tied embedding once: its matmul in the head is real work),
// 6 N is a forward (2 N) and a backward (4 N) multiply-add per weight, and 12 L d T is
// attention's two T x T products (QK^T and AV) over L layers, forward and backward
// (PaLM appendix B and nanoGPT's estimate_mfu; llm.c counts attention as 6 L d T). Model FLOPs
// exclude recomputation: a run that recomputes activations does more work for the same MFU.
// Pure.
#pragma once

#include "model/config.h"

namespace conveyor::model {

double training_flops_per_token(const ModelConfig& config);

}  // namespace conveyor::model
