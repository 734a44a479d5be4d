// Causal multi-head self-attention: the matrix products through cuBLAS (strided batches over
// the heads of one sequence), the causal softmax and its backward in row kernels that follow
// the CPU's order (lanes.cuh), the same algorithm as kernels/cpu/attention.cc:
//   forward:  att = softmax_causal(s Q K^T);  out = att V
//   backward: datt = dout V^T;  dV += att^T dout;
//             dpre = s * att * (datt - rowsum(att * datt));  dQ += dpre K;  dK += dpre^T Q
// with Q, K, V the [T, hd] slices of qkv for one (sequence, head) (row stride 3C, head h at
// column h*hd) and s = 1/sqrt(hd). The products are full T x T; the upper triangle of att
// and of dpre is exactly zero, so the masked entries add nothing.
//
// Column-major view (see linear.cu): a row-major [T, hd] slice with stride ld is a
// column-major [hd, T] matrix with leading dimension ld, and a row-major [T, T] block is its
// own transpose's column-major form. Heads of one sequence are hd columns apart, so one
// strided-batched call covers them; one call per sequence (B calls per product).
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/lanes.cuh"
#include "kernels/cuda/ops.h"
#include "kernels/scalar_math.h"

namespace conveyor::cuda_kernels {

namespace {

// Row r of the [B*NH*T, T] scores: position i = r % T keeps entries 0..i (softmax), zeroes
// the rest.
__global__ void causal_softmax_kernel(float* att, size_t rows, int T) {
  const RowLane rl = row_lane();
  const bool active = rl.row < rows;
  float* row = att + (active ? rl.row : 0) * T;
  const size_t n = active ? rl.row % T + 1 : 1;
  const float max = row_max(row, n, rl.lane, active);
  float acc = 0.0f;
  if (active)
    for (size_t j = rl.lane; j < n; j += kLanes) {
      const float e = kernels::scalar::fast_exp(row[j] - max);
      row[j] = e;
      acc += e;
    }
  const float sum = lanes_total(acc);
  if (!active) return;
  const float inv = 1.0f / sum;
  for (size_t j = rl.lane; j < n; j += kLanes) row[j] = row[j] * inv;
  for (size_t j = n + rl.lane; j < static_cast<size_t>(T); j += kLanes) row[j] = 0.0f;
}

// In place: da becomes the gradient of the scaled scores.
__global__ void causal_softmax_backward_kernel(float* da, const float* att, size_t rows, int T,
                                               float scale) {
  const RowLane rl = row_lane();
  const bool active = rl.row < rows;
  const size_t base = (active ? rl.row : 0) * T;
  const float* a = att + base;
  float* d = da + base;
  const size_t n = active ? rl.row % T + 1 : 1;
  float acc = 0.0f;
  if (active)
    for (size_t j = rl.lane; j < n; j += kLanes) acc += a[j] * d[j];
  const float dot = lanes_total(acc);
  if (!active) return;
  for (size_t j = rl.lane; j < n; j += kLanes) d[j] = a[j] * (d[j] - dot) * scale;
  for (size_t j = n + rl.lane; j < static_cast<size_t>(T); j += kLanes) d[j] = 0.0f;
}

struct Geometry {
  int T, C, NH, hd;
  long long ld, tt;  // qkv row stride (3C); one head's T x T block
  float scale;
};

Geometry geometry(int T, int C, int NH) {
  const int hd = C / NH;
  return Geometry{T,
                  C,
                  NH,
                  hd,
                  3LL * C,
                  static_cast<long long>(T) * T,
                  static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)))};
}

// C[m, n] = alpha op(A) op(B) + beta C over the NH heads of one sequence.
void heads_gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                float alpha, const float* A, long long lda, long long strideA, const float* B,
                long long ldb, long long strideB, float beta, float* Cm, long long ldc,
                long long strideC, int heads, const char* what) {
  check(cublasSgemmStridedBatched(h, ta, tb, m, n, k, &alpha, A, static_cast<int>(lda), strideA, B,
                                  static_cast<int>(ldb), strideB, &beta, Cm, static_cast<int>(ldc),
                                  strideC, heads),
        what);
}

}  // namespace

void attention_forward(cublasHandle_t h, cudaStream_t s, float* out, float* att, const float* qkv,
                       int B, int T, int C, int NH) {
  if (B <= 0 || T <= 0) return;
  const Geometry g = geometry(T, C, NH);
  for (int b = 0; b < B; ++b) {
    const float* q = qkv + static_cast<size_t>(b) * T * g.ld;
    const float* k = q + C;
    float* a = att + static_cast<size_t>(b) * NH * g.tt;
    // scores^T (col-major [T,T]) = s * K_cm^T Q_cm  ==  row-major scores = s Q K^T
    heads_gemm(h, CUBLAS_OP_T, CUBLAS_OP_N, T, T, g.hd, g.scale, k, g.ld, g.hd, q, g.ld, g.hd, 0.0f,
               a, T, g.tt, NH, "attention scores (cublasSgemmStridedBatched)");
  }
  const size_t rows = static_cast<size_t>(B) * NH * T;
  causal_softmax_kernel<<<row_blocks(rows), kRowThreads, 0, s>>>(att, rows, T);
  check_launch("attention softmax");
  for (int b = 0; b < B; ++b) {
    const float* v = qkv + static_cast<size_t>(b) * T * g.ld + 2 * C;
    const float* a = att + static_cast<size_t>(b) * NH * g.tt;
    float* o = out + static_cast<size_t>(b) * T * C;
    // out_cm [hd,T] = V_cm [hd,T] x att_cm [T,T]  ==  row-major out = att V
    heads_gemm(h, CUBLAS_OP_N, CUBLAS_OP_N, g.hd, T, T, 1.0f, v, g.ld, g.hd, a, T, g.tt, 0.0f, o, C,
               g.hd, NH, "attention output (cublasSgemmStridedBatched)");
  }
}

void attention_backward(cublasHandle_t h, cudaStream_t s, float* dqkv, float* scratch,
                        const float* dout, const float* qkv, const float* att, int B, int T, int C,
                        int NH) {
  if (B <= 0 || T <= 0) return;
  const Geometry g = geometry(T, C, NH);
  for (int b = 0; b < B; ++b) {
    const size_t qoff = static_cast<size_t>(b) * T * g.ld;
    const float* v = qkv + qoff + 2 * C;
    float* dv = dqkv + qoff + 2 * C;
    const float* a = att + static_cast<size_t>(b) * NH * g.tt;
    float* da = scratch + static_cast<size_t>(b) * NH * g.tt;
    const float* d = dout + static_cast<size_t>(b) * T * C;
    // datt = dout V^T:  da_cm [T,T] = V_cm^T [T,hd] x dout_cm [hd,T]
    heads_gemm(h, CUBLAS_OP_T, CUBLAS_OP_N, T, T, g.hd, 1.0f, v, g.ld, g.hd, d, C, g.hd, 0.0f, da,
               T, g.tt, NH, "attention backward datt (cublasSgemmStridedBatched)");
    // dV += att^T dout:  dV_cm [hd,T] += dout_cm [hd,T] x att_cm^T [T,T]
    heads_gemm(h, CUBLAS_OP_N, CUBLAS_OP_T, g.hd, T, T, 1.0f, d, C, g.hd, a, T, g.tt, 1.0f, dv,
               g.ld, g.hd, NH, "attention backward dV (cublasSgemmStridedBatched)");
  }
  const size_t rows = static_cast<size_t>(B) * NH * T;
  causal_softmax_backward_kernel<<<row_blocks(rows), kRowThreads, 0, s>>>(scratch, att, rows, T,
                                                                          g.scale);
  check_launch("attention softmax backward");
  for (int b = 0; b < B; ++b) {
    const size_t qoff = static_cast<size_t>(b) * T * g.ld;
    const float* q = qkv + qoff;
    const float* k = q + C;
    float* dq = dqkv + qoff;
    float* dk = dq + C;
    const float* da = scratch + static_cast<size_t>(b) * NH * g.tt;
    // dQ += dpre K:  dQ_cm [hd,T] += K_cm [hd,T] x dpre_cm [T,T]
    heads_gemm(h, CUBLAS_OP_N, CUBLAS_OP_N, g.hd, T, T, 1.0f, k, g.ld, g.hd, da, T, g.tt, 1.0f, dq,
               g.ld, g.hd, NH, "attention backward dQ (cublasSgemmStridedBatched)");
    // dK += dpre^T Q:  dK_cm [hd,T] += Q_cm [hd,T] x dpre_cm^T [T,T]
    heads_gemm(h, CUBLAS_OP_N, CUBLAS_OP_T, g.hd, T, T, 1.0f, q, g.ld, g.hd, da, T, g.tt, 1.0f, dk,
               g.ld, g.hd, NH, "attention backward dK (cublasSgemmStridedBatched)");
  }
}

}  // namespace conveyor::cuda_kernels
