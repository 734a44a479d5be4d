// AdamW, gradient-norm helper and small vector ops.
#include <cmath>
#include <cstddef>

#include "kernels/cpu/ops.h"
#include "kernels/cpu/parallel.h"

namespace conveyor::cpu {

void adamw_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, size_t n,
                  const AdamWParams& hp) {
  // Bias corrections in double, rounded once, so they match a double reference closely.
  const float bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(hp.beta1), hp.step));
  const float bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(hp.beta2), hp.step));
  const float b1 = hp.beta1, b2 = hp.beta2;
  const float lr = hp.lr, eps = hp.eps, wd = hp.weight_decay;
  // Element-wise, so any split gives the same bits.
  detail::parallel_rows(n, 65536, [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i) {
      const float g = grad[i];
      const float m = b1 * exp_avg[i] + (1.0f - b1) * g;
      const float v = b2 * exp_avg_sq[i] + (1.0f - b2) * g * g;
      exp_avg[i] = m;
      exp_avg_sq[i] = v;
      const float mhat = m / bc1;
      const float vhat = v / bc2;
      const float p = param[i];
      param[i] = p - lr * (mhat / (std::sqrt(vhat) + eps) + wd * p);
    }
  });
}

double sum(const float* x, size_t n) {
  double acc = 0.0;
  for (size_t i = 0; i < n; ++i) acc += x[i];
  return acc;
}

double sum_of_squares(const float* x, size_t n) {
  // Strict index order (one accumulator): the result is the same on every backend that
  // follows this contract, at the cost of not vectorising; it runs once per step.
  double acc = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double v = x[i];
    acc += v * v;
  }
  return acc;
}

void scale_inplace(float* x, size_t n, float s) {
  for (size_t i = 0; i < n; ++i) x[i] *= s;
}

void add_inplace(float* x, const float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace conveyor::cpu
