// Scalar float functions that both backends evaluate with the same IEEE operations in the same
// order, so the CPU and the CUDA kernels that call them give the same bits: the softmax
// exponential, GELU and its derivative, and one AdamW element update.
//
// Why one header for two compilers: bit-identical results across devices need the same
// sequence of roundings, and a copy per backend would drift. Both sides compile these without
// contracting a*b+c into a fused multiply-add (CPU kernels: -ffp-contract=off; CUDA kernels:
// --fmad=false, see kernels/CMakeLists.txt), and division and sqrt are IEEE on both (no
// -ffast-math, no --use_fast_math), so every operation below rounds exactly as written.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define CONVEYOR_HD __host__ __device__ __forceinline__
#else
#define CONVEYOR_HD \
  inline __attribute__((always_inline))  // never an out-of-line copy built with other flags
#endif

namespace conveyor::kernels::scalar {

CONVEYOR_HD float bits_to_float(uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

// e^x, accurate to ~2 ulp for x in [-87, 88]; 0 below that range, e^88 above it.
// NaN in, NaN out. (Cephes expf: x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial.)
// Branch-free, so the CPU loops that call it vectorise.
CONVEYOR_HD float fast_exp(float x) {
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
  float y = p * bits_to_float(bits);
  y = underflow ? 0.0f : y;
  return in != in ? in : y;
}

// GELU, GPT-2's tanh approximation. 0.5 * (1 + tanh(u)) == sigmoid(2u), so
// gelu(x) = x * sigmoid(2u) with u = sqrt(2/pi) * (x + 0.044715 x^3).
inline constexpr float kGeluSqrt2OverPi = 0.7978845608028654f;
inline constexpr float kGeluCubic = 0.044715f;

CONVEYOR_HD float gelu(float x) {
  const float u = kGeluSqrt2OverPi * (x + kGeluCubic * x * x * x);
  const float sig = 1.0f / (1.0f + fast_exp(-2.0f * u));
  return x * sig;
}

// d gelu / dx = s + x * 2 s (1 - s) * du/dx,  du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2).
CONVEYOR_HD float gelu_grad(float x) {
  const float u = kGeluSqrt2OverPi * (x + kGeluCubic * x * x * x);
  const float sig = 1.0f / (1.0f + fast_exp(-2.0f * u));
  const float du = kGeluSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * x * x);
  return sig + x * 2.0f * sig * (1.0f - sig) * du;
}

// One AdamW element: updates m, v and returns the new parameter. bc1, bc2 are the bias
// corrections 1 - beta^step, computed once per call (kernels::adamw_scalars, kernels/adamw.h).
struct AdamWScalars {
  float b1, b2, lr, eps, wd, bc1, bc2;
};

CONVEYOR_HD float adamw_element(float p, float g, float& m, float& v, const AdamWScalars& s) {
  m = s.b1 * m + (1.0f - s.b1) * g;
  v = s.b2 * v + (1.0f - s.b2) * g * g;
  const float mhat = m / s.bc1;
  const float vhat = v / s.bc2;
#if defined(__CUDA_ARCH__)
  const float root = sqrtf(vhat);
#else
  const float root = std::sqrt(vhat);
#endif
  return p - s.lr * (mhat / (root + s.eps) + s.wd * p);
}

}  // namespace conveyor::kernels::scalar
