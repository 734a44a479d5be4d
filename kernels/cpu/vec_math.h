// Internal helpers for the CPU kernels: branch-free float math that GCC can vectorise
// without -ffast-math, and reductions with a fixed summation order.
//
// Why not expf/tanhf from libm: glibc only offers vector versions under -ffast-math, and
// a scalar libm call per element makes softmax and GELU cost as much as the matmuls.
// These functions are plain IEEE arithmetic in a fixed order, so they give the same bits
// on every call (determinism), and they are accurate to a few ulp.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace conveyor::cpu::detail {

// e^x, accurate to ~2 ulp for x in [-87, 88]; 0 below that range, e^88 above it.
// NaN in, NaN out. (Cephes expf: x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial.)
inline float fast_exp(float x) {
  const float in = x;
  x = x < 88.0f ? x : 88.0f;
  const bool underflow = x < -87.0f;
  x = x > -87.0f ? x : -87.0f;
  // n = round(x / ln2) using the 1.5 * 2^23 trick (exact under round-to-nearest).
  const float magic = 12582912.0f;
  const float n = (x * 1.44269504088896341f + magic) - magic;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  // 2^n: n is in [-126, 127] after the clamps, so the biased exponent is in [1, 254].
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  float y = p * std::bit_cast<float>(bits);
  y = underflow ? 0.0f : y;
  return in != in ? in : y;
}

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
