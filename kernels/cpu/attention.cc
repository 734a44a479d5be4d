// Causal multi-head self-attention on OpenBLAS sgemm, one (batch, head) pair at a time.
//
// Per pair, with Q, K, V the [T, hd] slices of qkv (row stride 3C) and s = 1/sqrt(hd):
//   forward:  att = softmax_causal(s Q K^T);  out = att V
//   backward: datt = dout V^T;  dV += att^T dout;
//             dpre = s * att * (datt - rowsum(att * datt));  dQ += dpre K;  dK += dpre^T Q
// The products are full T x T gemms; the upper triangle of att (and of dpre) is exactly
// zero, so the masked entries add nothing. Softmax rows use detail::fast_exp and
// fixed-order sums. One task per (batch, head) pair; tasks write disjoint outputs, so
// results do not depend on threads.
#include <cblas.h>

#include <cmath>
#include <cstddef>

#include "common/error.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec_math.h"

namespace conveyor::cpu {

namespace {

struct Geometry {
  size_t T, C, NH, hd;
  float scale;
};

Geometry check_geometry(int B, int T, int C, int NH) {
  CONVEYOR_CHECK(B >= 0 && T >= 0 && NH > 0 && C > 0 && C % NH == 0,
                 "attention: need C ({}) divisible by the head count ({}) and B ({}), T ({}) >= 0",
                 C, NH, B, T);
  const size_t hd = static_cast<size_t>(C / NH);
  return Geometry{static_cast<size_t>(T), static_cast<size_t>(C), static_cast<size_t>(NH), hd,
                  static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)))};
}

// Row i of a causal softmax: entries 0..i from the scores, the rest zero.
void causal_softmax_rows(float* att, size_t T) {
  for (size_t i = 0; i < T; ++i) {
    float* row = att + i * T;
    const size_t n = i + 1;
    const float max = detail::lane_max(row, n);
    const float inv = 1.0f / detail::exp_shift_sum(row, n, max);
    for (size_t j = 0; j < n; ++j) row[j] *= inv;
    for (size_t j = n; j < T; ++j) row[j] = 0.0f;
  }
}

}  // namespace

void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C, int NH) {
  const Geometry g = check_geometry(B, T, C, NH);
  if (B == 0 || T == 0) return;
  const int ld_qkv = 3 * C;
  const int Ti = T;
  const int hd = static_cast<int>(g.hd);
  detail::blas_single_thread();
  detail::parallel_for(B * g.NH, [&](size_t pair) {
    const size_t b = pair / g.NH, h = pair % g.NH;
    {
      const float* q = qkv + b * g.T * 3 * g.C + h * g.hd;
      const float* k = q + g.C;
      const float* v = q + 2 * g.C;
      float* a = att + (b * g.NH + h) * g.T * g.T;
      float* o = out + b * g.T * g.C + h * g.hd;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Ti, Ti, hd, g.scale, q, ld_qkv, k,
                  ld_qkv, 0.0f, a, Ti);
      causal_softmax_rows(a, g.T);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Ti, hd, Ti, 1.0f, a, Ti, v, ld_qkv,
                  0.0f, o, C);
    }
  });
}

void attention_backward(float* dqkv, float* scratch, const float* dout, const float* qkv,
                        const float* att, int B, int T, int C, int NH) {
  const Geometry g = check_geometry(B, T, C, NH);
  if (B == 0 || T == 0) return;
  const int ld_qkv = 3 * C;
  const int Ti = T;
  const int hd = static_cast<int>(g.hd);
  detail::blas_single_thread();
  detail::parallel_for(B * g.NH, [&](size_t pair) {
    const size_t b = pair / g.NH, h = pair % g.NH;
    {
      const size_t qoff = b * g.T * 3 * g.C + h * g.hd;
      const float* q = qkv + qoff;
      const float* k = q + g.C;
      const float* v = q + 2 * g.C;
      float* dq = dqkv + qoff;
      float* dk = dq + g.C;
      float* dv = dq + 2 * g.C;
      const float* a = att + (b * g.NH + h) * g.T * g.T;
      float* da = scratch + (b * g.NH + h) * g.T * g.T;
      const float* d = dout + b * g.T * g.C + h * g.hd;

      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Ti, Ti, hd, 1.0f, d, C, v, ld_qkv, 0.0f,
                  da, Ti);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Ti, hd, Ti, 1.0f, a, Ti, d, C, 1.0f, dv,
                  ld_qkv);
      // Softmax backward in place: da becomes the gradient of the scaled scores.
      for (size_t i = 0; i < g.T; ++i) {
        const float* arow = a + i * g.T;
        float* drow = da + i * g.T;
        const size_t n = i + 1;
        const float dot = detail::lane_dot(arow, drow, n);
        for (size_t j = 0; j < n; ++j) drow[j] = arow[j] * (drow[j] - dot) * g.scale;
        for (size_t j = n; j < g.T; ++j) drow[j] = 0.0f;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Ti, hd, Ti, 1.0f, da, Ti, k, ld_qkv,
                  1.0f, dq, ld_qkv);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Ti, hd, Ti, 1.0f, da, Ti, q, ld_qkv,
                  1.0f, dk, ld_qkv);
    }
  });
}

}  // namespace conveyor::cpu
