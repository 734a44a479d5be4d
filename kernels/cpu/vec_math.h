// Internal helpers for the CPU kernels: branch-free float math that GCC can vectorise
// without -ffast-math, and reductions with a fixed summation order.
//
// Why not expf/tanhf from libm: glibc only offers vector versions under -ffast-math, and
// a scalar libm call per element makes softmax and GELU cost as much as the matmuls.
// These functions are plain IEEE arithmetic in a fixed order, so they give the same bits
// on every call (determinism), and they are accurate to a few ulp. The kernels are compiled
// with -ffp-contract=off, so no a*b+c becomes a fused multiply-add behind the source's back:
// the CUDA kernels follow the same orders (kernels/cuda/lanes.cuh) and give the same bits.
#pragma once

#include <cstddef>

#include "kernels/scalar_math.h"

namespace conveyor::cpu::detail {

// e^x (see kernels/scalar_math.h): the CUDA softmaxes call the same function.
using kernels::scalar::fast_exp;

// Sum of x[0..n) with 16 interleaved partial sums combined in a fixed tree. The order
// depends only on n, never on alignment or threads, and the loop vectorises.
inline float lane_sum(const float* x, size_t n) {
  float acc[16] = {};
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) acc[l] += x[i + l];
  for (int l = 0; i < n; ++i, ++l) acc[l] += x[i];
  for (int w = 8; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}

// Dot product with the same fixed order as lane_sum.
inline float lane_dot(const float* x, const float* y, size_t n) {
  float acc[16] = {};
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) acc[l] += x[i + l] * y[i + l];
  for (int l = 0; i < n; ++i, ++l) acc[l] += x[i] * y[i];
  for (int w = 8; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}

// Maximum of x[0..n), n >= 1. Max is exact, so the order does not matter, except that
// a NaN anywhere makes the result NaN (a NaN, once in a lane, stays there).
inline float max_keep_nan(float a, float v) {
  return (v > a || v != v) ? v : a;
}
inline float lane_max(const float* x, size_t n) {
  float acc[16];
  for (int l = 0; l < 16; ++l) acc[l] = x[0];
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) acc[l] = max_keep_nan(acc[l], x[i + l]);
  for (int l = 0; i < n; ++i, ++l) acc[l] = max_keep_nan(acc[l], x[i]);
  float m = acc[0];
  for (int l = 1; l < 16; ++l) m = max_keep_nan(m, acc[l]);
  return m;
}

// In place: x[j] = exp(x[j] - max) for j < n; returns the sum of the results
// (fixed order). Used by both softmaxes (attention rows and cross-entropy).
inline float exp_shift_sum(float* x, size_t n, float max) {
  for (size_t j = 0; j < n; ++j) x[j] = fast_exp(x[j] - max);
  return lane_sum(x, n);
}

}  // namespace conveyor::cpu::detail
