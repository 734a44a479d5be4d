#include "model/optimizer.h"

#include <cmath>

#include "kernels/backend.h"

namespace conveyor::model {

float learning_rate(const OptimizerConfig& c, int64_t step, int64_t total_steps) {
  if (c.warmup > 0 && step < c.warmup) {
    return c.lr * static_cast<float>(step + 1) / static_cast<float>(c.warmup);
  }
  const float min_lr = c.lr * c.min_lr_ratio;
  const int64_t decay_steps = total_steps - c.warmup;
  if (decay_steps <= 1) return c.lr;
  double progress = static_cast<double>(step - c.warmup) / static_cast<double>(decay_steps - 1);
  progress = std::min(1.0, std::max(0.0, progress));
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return static_cast<float>(min_lr + (c.lr - min_lr) * cosine);
}

double global_norm(std::span<const double> sum_squares) {
  double total = 0;
  for (double s : sum_squares) total += s;
  return std::sqrt(total);
}

float clip_factor(const OptimizerConfig& c, double norm) {
  if (c.grad_clip <= 0 || norm <= c.grad_clip) return 1.0f;
  return static_cast<float>(c.grad_clip / (norm + 1e-6));
}

void adamw_step(const OptimizerConfig& c, ParamStore& store, float lr, int64_t step) {
  kernels::Backend& k = store.backend();
  for (size_t i = 0; i < store.specs().size(); ++i) {
    if (!store.has_moments(static_cast<int>(i))) continue;  // another replica updates it
    kernels::AdamWParams hp;
    hp.lr = lr;
    hp.beta1 = c.beta1;
    hp.beta2 = c.beta2;
    hp.eps = c.eps;
    hp.weight_decay = store.specs()[i].decay ? c.weight_decay : 0.0f;
    hp.step = static_cast<int>(step + 1);
    auto p = store.param(static_cast<int>(i));
    k.adamw_update(p.data(), store.grad(static_cast<int>(i)).data(),
                   store.exp_avg(static_cast<int>(i)).data(),
                   store.exp_avg_sq(static_cast<int>(i)).data(), p.size(), hp);
  }
}

}  // namespace conveyor::model
