// AdamW's hyper-parameters for one update (AdamWParams) and the one place that turns them into
// the scalars of the element update (adamw_scalars): every backend calls it, so the CPU and the
// CUDA backends divide by the same bias corrections, bit for bit.
#pragma once

#include "kernels/scalar_math.h"

namespace conveyor::kernels {

// GPT-2's moment decay rates and epsilon: the defaults of AdamWParams and of a training run
// (model::OptimizerConfig, docs/DESIGN.md).
inline constexpr float kAdamWBeta1 = 0.9f;
inline constexpr float kAdamWBeta2 = 0.95f;
inline constexpr float kAdamWEps = 1e-8f;

struct AdamWParams {
  float lr = 0;  // the caller's schedule decides it (model::learning_rate)
  float beta1 = kAdamWBeta1;
  float beta2 = kAdamWBeta2;
  float eps = kAdamWEps;
  float weight_decay = 0;  // 0 for tensors that are not decayed
  int step = 1;            // 1-based, for bias correction
};

// The element update's scalars for `hp`: its rates, and the bias corrections 1 - beta^step
// computed in double and rounded to float once (so they match a double reference closely).
// Out of line, in kernels/ (built with -ffp-contract=off), so there is one copy of the
// computation whichever backend asks.
scalar::AdamWScalars adamw_scalars(const AdamWParams& hp);

}  // namespace conveyor::kernels
