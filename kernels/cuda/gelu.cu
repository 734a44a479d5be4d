// GELU (the tanh approximation) and the residual add, element-wise, with the CPU's formulas
// from kernels/scalar_math.h: the same bits as the CPU backend.
#include <cstddef>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/ops.h"
#include "kernels/scalar_math.h"

namespace conveyor::cuda_kernels {

namespace {

__global__ void gelu_forward_kernel(float* out, const float* inp, size_t n) {
  CONVEYOR_FOR_EACH_ELEMENT(i, n) out[i] = kernels::scalar::gelu(inp[i]);
}

__global__ void gelu_backward_kernel(float* dinp, const float* inp, const float* dout, size_t n) {
  CONVEYOR_FOR_EACH_ELEMENT(i, n) dinp[i] += kernels::scalar::gelu_grad(inp[i]) * dout[i];
}

__global__ void residual_forward_kernel(float* out, const float* a, const float* b, size_t n) {
  CONVEYOR_FOR_EACH_ELEMENT(i, n) out[i] = a[i] + b[i];
}

}  // namespace

void gelu_forward(cudaStream_t s, float* out, const float* inp, size_t n) {
  if (n == 0) return;
  gelu_forward_kernel<<<element_blocks(n), kElementThreads, 0, s>>>(out, inp, n);
  check_launch("gelu forward");
}

void gelu_backward(cudaStream_t s, float* dinp, const float* inp, const float* dout, size_t n) {
  if (n == 0) return;
  gelu_backward_kernel<<<element_blocks(n), kElementThreads, 0, s>>>(dinp, inp, dout, n);
  check_launch("gelu backward");
}

void residual_forward(cudaStream_t s, float* out, const float* a, const float* b, size_t n) {
  if (n == 0) return;
  residual_forward_kernel<<<element_blocks(n), kElementThreads, 0, s>>>(out, a, b, n);
  check_launch("residual forward");
}

}  // namespace conveyor::cuda_kernels
