// CUDA kernels: forward and backward of every op in kernels/backend.h, one launcher per op,
// each enqueued on the caller's stream (the CudaBackend's one compute stream). Shapes,
// layouts and the accumulate (+=) convention are the backend.h contracts; pointers are device
// memory. Launchers return as soon as the work is queued, except where noted.
//
// Determinism: no launcher uses atomics whose order could vary, and every reduction has a
// split that depends on the shape alone (never on the SM count), so the same inputs give the
// same bits on every run, and a layer's results do not depend on how the model is cut into
// stages. cuBLAS runs on the caller's handle, configured for this by CudaBackend (one stream,
// a fixed workspace, pedantic fp32 math: no TF32).
//
// Agreement with the CPU backend, per op (tests/unit/kernels/cross_backend_test.cc):
// - Same bits: embedding, layernorm (the CPU's 16-lane reduction order, lanes.cuh), GELU,
//   residual, softmax probabilities and cross-entropy backward given the same logits, AdamW,
//   scale/add, the linear bias gradient (rows in ascending order), and sum/sum_of_squares
//   for n <= kSumChunk.
// - Within tolerance: everything that goes through a matrix product (linear, attention),
//   because cuBLAS and OpenBLAS add the products in different orders; the cross-entropy
//   loss (CUDA's logf and glibc's logf may differ by an ulp); sums of more than kSumChunk
//   elements (chunked, see chunk_sums).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/scalar_math.h"

namespace conveyor::cuda_kernels {

void embedding_forward(cudaStream_t s, float* out, const int32_t* tokens, const float* wte,
                       const float* wpe, int B, int T, int C);
void embedding_backward(cudaStream_t s, float* dwte, float* dwpe, const float* dout,
                        const int32_t* tokens, int B, int T, int C);

void layernorm_forward(cudaStream_t s, float* out, float* mean, float* rstd, const float* inp,
                       const float* weight, const float* bias, int N, int C);
void layernorm_backward_input(cudaStream_t s, float* dinp, const float* dout, const float* inp,
                              const float* weight, const float* mean, const float* rstd, int N,
                              int C);
void layernorm_backward_weight(cudaStream_t s, float* dweight, float* dbias, const float* dout,
                               const float* inp, const float* mean, const float* rstd, int N,
                               int C);

void linear_forward(cublasHandle_t h, cudaStream_t s, float* out, const float* inp,
                    const float* weight, const float* bias, int N, int IC, int OC);
void linear_backward_input(cublasHandle_t h, float* dinp, const float* dout, const float* weight,
                           int N, int IC, int OC);
void linear_backward_weight(cublasHandle_t h, cudaStream_t s, float* dweight, float* dbias,
                            const float* dout, const float* inp, int N, int IC, int OC);

// C % NH == 0 is the caller's check (it throws before anything is queued).
void attention_forward(cublasHandle_t h, cudaStream_t s, float* out, float* att, const float* qkv,
                       int B, int T, int C, int NH);
void attention_backward(cublasHandle_t h, cudaStream_t s, float* dqkv, float* scratch,
                        const float* dout, const float* qkv, const float* att, int B, int T, int C,
                        int NH);

void gelu_forward(cudaStream_t s, float* out, const float* inp, size_t n);
void gelu_backward(cudaStream_t s, float* dinp, const float* inp, const float* dout, size_t n);
void residual_forward(cudaStream_t s, float* out, const float* a, const float* b, size_t n);

// Cross-entropy with its target check on the device. *bad_row (device memory, kNoBadRow until
// a bad target is seen) becomes the smallest row whose target is outside [0, V) (atomicMin: the
// result does not depend on the order); the op kernels read it and write nothing while it is
// set. It is sticky: the caller reads it back at its next wait for the stream, and resets it to
// kNoBadRow (a 0x7f byte fill) after reporting it.
inline constexpr int kNoBadRow = 0x7f7f7f7f;  // what a 0x7f byte fill gives
void crossentropy_forward(cudaStream_t s, int* bad_row, float* losses, float* probs,
                          const float* logits, const int32_t* targets, int N, int V);
void crossentropy_backward(cudaStream_t s, int* bad_row, float* dlogits, const float* probs,
                           const int32_t* targets, float scale, int N, int V);

void adamw_update(cudaStream_t s, float* param, const float* grad, float* exp_avg,
                  float* exp_avg_sq, size_t n, const kernels::scalar::AdamWScalars& hp);

// partials[c] = sum of x[i] (or x[i]^2) in double over i in [c*kSumChunk, (c+1)*kSumChunk) ∩
// [0, n), added in index order by one thread per chunk. The caller adds the partials in
// chunk order, so for n <= kSumChunk the result is the CPU's index-order sum, bit for bit.
inline constexpr size_t kSumChunk = 4096;
inline size_t sum_chunks(size_t n) {
  return (n + kSumChunk - 1) / kSumChunk;
}
void chunk_sums(cudaStream_t s, double* partials, const float* x, size_t n, bool squares);

void scale_inplace(cudaStream_t s, float* x, size_t n, float factor);
void add_inplace(cudaStream_t s, float* x, const float* y, size_t n);

}  // namespace conveyor::cuda_kernels
