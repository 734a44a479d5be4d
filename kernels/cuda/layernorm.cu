// LayerNorm over the last dimension (eps 1e-5), forward and split backward, in the CPU
// kernels' order of operations (kernels/cpu/layernorm.cc): row statistics by the 16-lane
// reductions of lanes.cuh, element formulas written as on the CPU, so the bits match.
//
// The weight gradient adds rows in ascending order into each channel (one thread per
// channel), as the CPU does: the same bits, and no split whose size could vary.
#include <cuda_runtime.h>

#include <cstddef>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/lanes.cuh"
#include "kernels/cuda/ops.h"

namespace conveyor::cuda_kernels {

namespace {

constexpr float kEps = 1e-5f;

__global__ void layernorm_forward_kernel(float* out, float* mean, float* rstd, const float* inp,
                                         const float* weight, const float* bias, int N, int C) {
  const RowLane rl = row_lane();
  const bool active = rl.row < static_cast<size_t>(N);
  const size_t base = active ? rl.row * C : 0;
  const float* x = inp + base;
  float acc = 0.0f;
  if (active)
    for (int j = rl.lane; j < C; j += kLanes) acc += x[j];
  const float m = lanes_total(acc) / C;
  acc = 0.0f;
  if (active)
    for (int j = rl.lane; j < C; j += kLanes) {
      const float o = x[j] - m;
      acc += o * o;
    }
  const float var = lanes_total(acc) / C;
  if (!active) return;
  const float s = 1.0f / sqrtf(var + kEps);
  float* o = out + base;
  for (int j = rl.lane; j < C; j += kLanes) o[j] = (x[j] - m) * s * weight[j] + bias[j];
  if (rl.lane == 0) {
    mean[rl.row] = m;
    rstd[rl.row] = s;
  }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  g = weight * dout.
__global__ void layernorm_backward_input_kernel(float* dinp, const float* dout, const float* inp,
                                                const float* weight, const float* mean,
                                                const float* rstd, int N, int C) {
  const RowLane rl = row_lane();
  const bool active = rl.row < static_cast<size_t>(N);
  const size_t base = active ? rl.row * C : 0;
  const float* x = inp + base;
  const float* d = dout + base;
  const float m = active ? mean[rl.row] : 0.0f;
  const float s = active ? rstd[rl.row] : 0.0f;
  float gsum = 0.0f, gxsum = 0.0f;
  if (active)
    for (int j = rl.lane; j < C; j += kLanes) {
      const float xhat = (x[j] - m) * s;
      const float g = weight[j] * d[j];
      gsum += g;
      gxsum += g * xhat;
    }
  const float gmean = lanes_total(gsum) / C;
  const float gxmean = lanes_total(gxsum) / C;
  if (!active) return;
  float* dx = dinp + base;
  for (int j = rl.lane; j < C; j += kLanes) {
    const float xhat = (x[j] - m) * s;
    dx[j] += (weight[j] * d[j] - gmean - xhat * gxmean) * s;
  }
}

__global__ void layernorm_backward_weight_kernel(float* dweight, float* dbias, const float* dout,
                                                 const float* inp, const float* mean,
                                                 const float* rstd, int N, int C) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= C) return;
  float db = dbias[i], dw = dweight[i];
#pragma unroll 4
  for (int n = 0; n < N; ++n) {
    const size_t at = static_cast<size_t>(n) * C + i;
    const float d = dout[at];
    db += d;
    dw += (inp[at] - mean[n]) * rstd[n] * d;
  }
  dbias[i] = db;
  dweight[i] = dw;
}

}  // namespace

void layernorm_forward(cudaStream_t s, float* out, float* mean, float* rstd, const float* inp,
                       const float* weight, const float* bias, int N, int C) {
  if (N <= 0 || C <= 0) return;
  layernorm_forward_kernel<<<row_blocks(N), kRowThreads, 0, s>>>(out, mean, rstd, inp, weight, bias,
                                                                 N, C);
  check_launch("layernorm forward");
}

void layernorm_backward_input(cudaStream_t s, float* dinp, const float* dout, const float* inp,
                              const float* weight, const float* mean, const float* rstd, int N,
                              int C) {
  if (N <= 0 || C <= 0) return;
  layernorm_backward_input_kernel<<<row_blocks(N), kRowThreads, 0, s>>>(dinp, dout, inp, weight,
                                                                        mean, rstd, N, C);
  check_launch("layernorm backward (input)");
}

void layernorm_backward_weight(cudaStream_t s, float* dweight, float* dbias, const float* dout,
                               const float* inp, const float* mean, const float* rstd, int N,
                               int C) {
  if (N <= 0 || C <= 0) return;
  constexpr int kThreads = 128;
  layernorm_backward_weight_kernel<<<(C + kThreads - 1) / kThreads, kThreads, 0, s>>>(
      dweight, dbias, dout, inp, mean, rstd, N, C);
  check_launch("layernorm backward (weight)");
}

}  // namespace conveyor::cuda_kernels
