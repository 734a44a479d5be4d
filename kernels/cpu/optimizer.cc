// AdamW, gradient-norm helper and small vector ops.
#include <cstddef>

#include "kernels/adamw.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/parallel.h"
#include "kernels/scalar_math.h"

namespace conveyor::cpu {

void adamw_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, size_t n,
                  const AdamWParams& hp) {
  const kernels::scalar::AdamWScalars s = kernels::adamw_scalars(hp);  // what CUDA uses too
  // Element-wise (kernels/scalar_math.h, shared with CUDA), so any split gives the same bits.
  detail::parallel_rows(n, 65536, [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i)
      param[i] = kernels::scalar::adamw_element(param[i], grad[i], exp_avg[i], exp_avg_sq[i], s);
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

void sums_of_squares(double* out, const float* const* xs, const size_t* ns, size_t count) {
  for (size_t i = 0; i < count; ++i) out[i] = sum_of_squares(xs[i], ns[i]);
}

void scale_inplace(float* x, size_t n, float s) {
  for (size_t i = 0; i < n; ++i) x[i] *= s;
}

void add_inplace(float* x, const float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace conveyor::cpu
