// AdamW with warmup + cosine learning rate, and clipping by the global gradient norm.
//
// Every update is per parameter and elementwise, so it gives the same bits however the
// parameters are partitioned over stages.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/adamw.h"
#include "model/param_store.h"

namespace conveyor::model {

struct OptimizerConfig {
  float lr = 5e-3f;           // peak learning rate
  int64_t warmup = 30;        // linear warmup steps
  float min_lr_ratio = 0.1f;  // min_lr = lr * min_lr_ratio
  float weight_decay = 0.1f;  // applied to 2-D weights only
  float grad_clip = 1.0f;     // clip the global gradient norm to this; <= 0 disables
  // GPT-2's moment rates and epsilon, as the kernels define them (kernels/adamw.h).
  float beta1 = kernels::kAdamWBeta1;
  float beta2 = kernels::kAdamWBeta2;
  float eps = kernels::kAdamWEps;
};

// Learning rate of 0-based step `step` of a run of `total_steps`: linear warmup to lr over
// `warmup` steps, then cosine decay to lr * min_lr_ratio at step `total_steps - 1`.
float learning_rate(const OptimizerConfig& config, int64_t step, int64_t total_steps);

// Global gradient norm from per-parameter sums of squares given in global table order
// (summed in that order, in double).
double global_norm(std::span<const double> sum_squares_in_global_order);

// Factor to multiply gradients by so their norm is at most grad_clip (1 when it already is).
float clip_factor(const OptimizerConfig& config, double norm);

// One AdamW step over every parameter of `store` that has moments there (all of them
// without ZeRO-1; `step` is 0-based; bias correction uses step+1). Gradients must already be
// clipped.
void adamw_step(const OptimizerConfig& config, ParamStore& store, float lr, int64_t step);

}  // namespace conveyor::model
