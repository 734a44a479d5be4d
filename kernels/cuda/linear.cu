// Linear layer: matrix products through cuBLAS (fp32, no TF32; see CudaBackend), the bias add
// and the bias gradient in small kernels. Weights are [OC, IC] (PyTorch layout), row-major.
//
// cuBLAS is column-major, and a row-major [R, K] matrix is a column-major [K, R] one with the
// same leading dimension, so each product is issued on the transposes:
//   out^T  [OC,N]   = (W as [IC,OC])^T x (inp as [IC,N])       sgemm(T, N)
//   dinp^T [IC,N]  += (W as [IC,OC])   x (dout as [OC,N])      sgemm(N, N), beta 1
//   dW^T   [IC,OC] += (inp as [IC,N])  x (dout as [OC,N])^T    sgemm(N, T), beta 1
// The bias gradient adds rows in ascending order per output channel (one thread each), the
// CPU's order, so it has the CPU's bits; the products have cuBLAS's own order.
#include <cstddef>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/ops.h"

namespace conveyor::cuda_kernels {

namespace {

__global__ void add_bias_kernel(float* out, const float* bias, int OC, size_t total) {
  CONVEYOR_FOR_EACH_ELEMENT(i, total) out[i] += bias[i % OC];
}

__global__ void bias_backward_kernel(float* dbias, const float* dout, int N, int OC) {
  const int o = blockIdx.x * blockDim.x + threadIdx.x;
  if (o >= OC) return;
  float acc = dbias[o];
#pragma unroll 4
  for (int n = 0; n < N; ++n) acc += dout[static_cast<size_t>(n) * OC + o];
  dbias[o] = acc;
}

const float kOne = 1.0f;
const float kZero = 0.0f;

}  // namespace

void linear_forward(cublasHandle_t h, cudaStream_t s, float* out, const float* inp,
                    const float* weight, const float* bias, int N, int IC, int OC) {
  if (N <= 0 || OC <= 0) return;
  const size_t total = static_cast<size_t>(N) * OC;
  if (IC <= 0) {  // empty sum; cuBLAS rejects a zero leading dimension
    check(cudaMemsetAsync(out, 0, total * sizeof(float), s), "linear forward (empty)");
  } else {
    check(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, IC, &kOne, weight, IC, inp, IC, &kZero,
                      out, OC),
          "linear forward (cublasSgemm)");
  }
  if (bias != nullptr) {
    add_bias_kernel<<<element_blocks(total), kElementThreads, 0, s>>>(out, bias, OC, total);
    check_launch("linear forward (bias)");
  }
}

void linear_backward_input(cublasHandle_t h, float* dinp, const float* dout, const float* weight,
                           int N, int IC, int OC) {
  if (N <= 0 || IC <= 0 || OC <= 0) return;
  check(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, IC, N, OC, &kOne, weight, IC, dout, OC, &kOne,
                    dinp, IC),
        "linear backward input (cublasSgemm)");
}

void linear_backward_weight(cublasHandle_t h, cudaStream_t s, float* dweight, float* dbias,
                            const float* dout, const float* inp, int N, int IC, int OC) {
  if (N <= 0 || OC <= 0) return;
  if (IC > 0) {
    check(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, IC, OC, N, &kOne, inp, IC, dout, OC, &kOne,
                      dweight, IC),
          "linear backward weight (cublasSgemm)");
  }
  if (dbias != nullptr) {
    constexpr int kThreads = 128;
    bias_backward_kernel<<<(OC + kThreads - 1) / kThreads, kThreads, 0, s>>>(dbias, dout, N, OC);
    check_launch("linear backward bias");
  }
}

}  // namespace conveyor::cuda_kernels
