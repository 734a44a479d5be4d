// Token + position embedding on the GPU, without atomics.
//
// Backward, dwte: one block per row of tokens; only the block of a token's first row writes
// that token's gradient row, adding every row with that token in ascending (b, t) order, the
// CPU's order, so no two blocks touch one row and the bits match the CPU's. The price is a
// scan of the token ids per block (N ints from cache), small next to the matmuls.
// Backward, dwpe: one thread per (t, c), adding b = 0, 1, ... in order.
#include <cstddef>
#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/ops.h"

namespace conveyor::cuda_kernels {

namespace {

constexpr int kThreads = 256;
constexpr int kChannelsPerThread = 4;  // dwte: C <= 1024 adds in one pass over the rows

unsigned blocks_for(size_t n) {
  return static_cast<unsigned>((n + kThreads - 1) / kThreads);
}

__global__ void embedding_forward_kernel(float* out, const int32_t* tokens, const float* wte,
                                         const float* wpe, int T, int C, size_t total) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const size_t row = i / C;
  const size_t c = i % C;
  const size_t t = row % T;
  out[i] = wte[static_cast<size_t>(tokens[row]) * C + c] + wpe[t * C + c];
}

__global__ void wte_backward_kernel(float* dwte, const float* dout, const int32_t* tokens, int N,
                                    int C) {
  const int r = blockIdx.x;
  const int32_t tok = tokens[r];
  int earlier = 0;
  for (int q = threadIdx.x; q < r; q += blockDim.x) earlier |= tokens[q] == tok;
  if (__syncthreads_or(earlier)) return;  // an earlier row owns this token
  float* g = dwte + static_cast<size_t>(tok) * C;
  for (int c0 = 0; c0 < C; c0 += kThreads * kChannelsPerThread) {
    float acc[kChannelsPerThread];
    for (int k = 0; k < kChannelsPerThread; ++k) {
      const int c = c0 + k * kThreads + threadIdx.x;
      acc[k] = c < C ? g[c] : 0.0f;
    }
    for (int q = r; q < N; ++q) {
      if (tokens[q] != tok) continue;
      const float* d = dout + static_cast<size_t>(q) * C;
      for (int k = 0; k < kChannelsPerThread; ++k) {
        const int c = c0 + k * kThreads + threadIdx.x;
        if (c < C) acc[k] += d[c];
      }
    }
    for (int k = 0; k < kChannelsPerThread; ++k) {
      const int c = c0 + k * kThreads + threadIdx.x;
      if (c < C) g[c] = acc[k];
    }
  }
}

__global__ void wpe_backward_kernel(float* dwpe, const float* dout, int B, int T, int C) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<size_t>(T) * C) return;
  float acc = dwpe[i];
  for (int b = 0; b < B; ++b) acc += dout[static_cast<size_t>(b) * T * C + i];
  dwpe[i] = acc;
}

}  // namespace

void embedding_forward(cudaStream_t s, float* out, const int32_t* tokens, const float* wte,
                       const float* wpe, int B, int T, int C) {
  const size_t total = static_cast<size_t>(B) * T * C;
  if (total == 0) return;
  embedding_forward_kernel<<<blocks_for(total), kThreads, 0, s>>>(out, tokens, wte, wpe, T, C,
                                                                  total);
  check_launch("embedding forward");
}

void embedding_backward(cudaStream_t s, float* dwte, float* dwpe, const float* dout,
                        const int32_t* tokens, int B, int T, int C) {
  const int N = B * T;
  if (N == 0 || C == 0) return;
  wte_backward_kernel<<<N, kThreads, 0, s>>>(dwte, dout, tokens, N, C);
  check_launch("embedding backward (wte)");
  wpe_backward_kernel<<<blocks_for(static_cast<size_t>(T) * C), kThreads, 0, s>>>(dwpe, dout, B, T,
                                                                                  C);
  check_launch("embedding backward (wpe)");
}

}  // namespace conveyor::cuda_kernels
