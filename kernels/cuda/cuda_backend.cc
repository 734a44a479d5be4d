#include "kernels/cuda/cuda_backend.h"

#include <cuda_runtime.h>  // the typed cudaMalloc overloads

#include <cmath>
#include <utility>
#include <vector>

#include "common/error.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/ops.h"
#include "kernels/device.h"

namespace conveyor::cuda_kernels {

void throw_cuda_error(const char* what, const char* detail) {
  throw Error(ErrorKind::kRuntime, fmt::format("CUDA {} failed: {}", what, detail));
}

}  // namespace conveyor::cuda_kernels

namespace conveyor::kernels {

namespace ck = conveyor::cuda_kernels;
using ck::check;

namespace {

// What cuBLAS wants on Hopper (llm.c and PyTorch use the same); fixed, so cuBLAS never picks
// an algorithm by how much workspace happens to be free.
constexpr size_t kCublasWorkspaceBytes = 32u << 20;

std::string describe_device(int gpu, cublasHandle_t cublas) {
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, gpu), "cudaGetDeviceProperties");
  int version = 0;
  check(cublasGetVersion(cublas, &version), "cublasGetVersion");
  return fmt::format("cuda (GPU {}: {}, sm_{}{}, {} SMs; cuBLAS {}.{}.{}; fp32, TF32 off)", gpu,
                     prop.name, prop.major, prop.minor, prop.multiProcessorCount, version / 10000,
                     version / 100 % 100, version % 100);
}

}  // namespace

CudaBackend::CudaBackend(int gpu) : gpu_(gpu) {
  try {
    use_device();
    // A blocking stream: it also orders against the legacy default stream, so a plain
    // cudaMemcpy issued outside this backend runs after the ops queued before it.
    check(cudaStreamCreate(&stream_), "cudaStreamCreate");
    check(cublasCreate(&cublas_), "cublasCreate");
    // SetStream resets the workspace to cuBLAS's pool, so the fixed workspace comes after.
    check(cublasSetStream(cublas_, stream_), "cublasSetStream");
    check(cudaMalloc(&cublas_workspace_, kCublasWorkspaceBytes), "cudaMalloc (cuBLAS workspace)");
    check(cublasSetWorkspace(cublas_, cublas_workspace_, kCublasWorkspaceBytes),
          "cublasSetWorkspace");
    check(cublasSetMathMode(cublas_, CUBLAS_PEDANTIC_MATH), "cublasSetMathMode");
    check(cublasSetAtomicsMode(cublas_, CUBLAS_ATOMICS_NOT_ALLOWED), "cublasSetAtomicsMode");
    check(cudaMalloc(&bad_row_, sizeof(int)), "cudaMalloc (target check)");
    check(cudaMallocHost(&bad_row_host_, sizeof(int)), "cudaMallocHost (target check)");
    check(cudaMemsetAsync(bad_row_, 0x7f, sizeof(int), stream_), "cudaMemsetAsync (target check)");
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (target check)");
    describe_ = describe_device(gpu_, cublas_);
  } catch (...) {
    release();
    throw;
  }
}

CudaBackend::~CudaBackend() {
  release();
}

void CudaBackend::release() noexcept {
  // At process exit the CUDA runtime may already be shutting down; the driver then frees
  // everything with the context, and calls into the runtime would only fail.
  if (cudaSetDevice(gpu_) == cudaErrorCudartUnloading) return;
  if (stream_) cudaStreamSynchronize(stream_);
  if (partials_) cudaFree(partials_);
  if (bad_row_) cudaFree(bad_row_);
  if (bad_row_host_) cudaFreeHost(bad_row_host_);
  if (cublas_) cublasDestroy(cublas_);
  if (cublas_workspace_) cudaFree(cublas_workspace_);
  if (stream_) cudaStreamDestroy(stream_);
  partials_ = nullptr;
  bad_row_ = nullptr;
  bad_row_host_ = nullptr;
  cublas_ = nullptr;
  cublas_workspace_ = nullptr;
  stream_ = nullptr;
}

void CudaBackend::use_device() const {
  check(cudaSetDevice(gpu_), "cudaSetDevice");
}

void* CudaBackend::allocate_bytes(size_t bytes) const {
  if (bytes == 0) return nullptr;
  use_device();
  void* p = nullptr;
  const cudaError_t status = cudaMalloc(&p, bytes);
  if (status != cudaSuccess) {
    cudaGetLastError();  // an allocation failure is not sticky; clear it
    throw Error(ErrorKind::kRuntime,
                fmt::format("cuda: cannot allocate {} bytes on GPU {}: {}", bytes, gpu_,
                            cudaGetErrorString(status)),
                "use smaller micro-batches, more stages, or a GPU with more memory");
  }
  // Zero-filled and visible to every stream before the buffer is handed out.
  check(cudaMemsetAsync(p, 0, bytes, stream_), "cudaMemsetAsync (new buffer)");
  check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (new buffer)");
  return p;
}

void CudaBackend::free_bytes(void* p) const noexcept {
  if (p == nullptr) return;
  // At exit the runtime may be shutting down; the driver frees p with the context then.
  if (cudaSetDevice(gpu_) == cudaErrorCudartUnloading) return;
  cudaFree(p);  // waits for work using p to finish
}

void CudaBackend::zero(void* p, size_t bytes) {
  if (bytes == 0) return;
  use_device();
  check(cudaMemsetAsync(p, 0, bytes, stream_), "cudaMemsetAsync (zero)");
}

void CudaBackend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  use_device();
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_),
        "cudaMemcpyAsync (device to device)");
}

void CudaBackend::to_host(void* host_dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  use_device();
  check(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_),
        "cudaMemcpyAsync (device to host)");
  wait_for_stream("cudaStreamSynchronize (device to host)");
}

void CudaBackend::from_host(void* dst, const void* host_src, size_t bytes) {
  if (bytes == 0) return;
  use_device();
  check(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_),
        "cudaMemcpyAsync (host to device)");
  wait_for_stream("cudaStreamSynchronize (host to device)");
}

void CudaBackend::synchronize() {
  use_device();
  wait_for_stream("cudaStreamSynchronize");
}

void CudaBackend::wait_for_stream(const char* what) {
  std::lock_guard lock(target_mutex_);
  const bool read_record = std::exchange(targets_queued_, false);
  if (read_record)
    check(cudaMemcpyAsync(bad_row_host_, bad_row_, sizeof(int), cudaMemcpyDeviceToHost, stream_),
          "cudaMemcpyAsync (target check)");
  check(cudaStreamSynchronize(stream_), what);
  if (!read_record || *bad_row_host_ == ck::kNoBadRow) return;
  const int row = *bad_row_host_;
  // Reset, so that the next batch is checked afresh.
  check(cudaMemsetAsync(bad_row_, 0x7f, sizeof(int), stream_), "cudaMemsetAsync (target check)");
  check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (target check)");
  throw Error(ErrorKind::kRuntime,
              fmt::format("cross-entropy: the target of row {} is outside the vocabulary [0, {}); "
                          "the op wrote nothing",
                          row, target_vocab_));
}

void CudaBackend::bind_thread() {
  use_device();
}

void CudaBackend::embedding_forward(float* out, const int32_t* tokens, const float* wte,
                                    const float* wpe, int B, int T, int C) {
  use_device();
  ck::embedding_forward(stream_, out, tokens, wte, wpe, B, T, C);
}

void CudaBackend::embedding_backward(float* dwte, float* dwpe, const float* dout,
                                     const int32_t* tokens, int B, int T, int C) {
  use_device();
  ck::embedding_backward(stream_, dwte, dwpe, dout, tokens, B, T, C);
}

void CudaBackend::layernorm_forward(float* out, float* mean, float* rstd, const float* inp,
                                    const float* weight, const float* bias, int N, int C) {
  use_device();
  ck::layernorm_forward(stream_, out, mean, rstd, inp, weight, bias, N, C);
}

void CudaBackend::layernorm_backward_input(float* dinp, const float* dout, const float* inp,
                                           const float* weight, const float* mean,
                                           const float* rstd, int N, int C) {
  use_device();
  ck::layernorm_backward_input(stream_, dinp, dout, inp, weight, mean, rstd, N, C);
}

void CudaBackend::layernorm_backward_weight(float* dweight, float* dbias, const float* dout,
                                            const float* inp, const float* mean, const float* rstd,
                                            int N, int C) {
  use_device();
  ck::layernorm_backward_weight(stream_, dweight, dbias, dout, inp, mean, rstd, N, C);
}

void CudaBackend::linear_forward(float* out, const float* inp, const float* weight,
                                 const float* bias, int N, int IC, int OC) {
  use_device();
  ck::linear_forward(cublas_, stream_, out, inp, weight, bias, N, IC, OC);
}

void CudaBackend::linear_backward_input(float* dinp, const float* dout, const float* weight, int N,
                                        int IC, int OC) {
  use_device();
  ck::linear_backward_input(cublas_, dinp, dout, weight, N, IC, OC);
}

void CudaBackend::linear_backward_weight(float* dweight, float* dbias, const float* dout,
                                         const float* inp, int N, int IC, int OC) {
  use_device();
  ck::linear_backward_weight(cublas_, stream_, dweight, dbias, dout, inp, N, IC, OC);
}

namespace {
void check_attention_geometry(int B, int T, int C, int NH) {
  CONVEYOR_CHECK(B >= 0 && T >= 0 && NH > 0 && C > 0 && C % NH == 0,
                 "attention: need C ({}) divisible by the head count ({}) and B ({}), T ({}) >= 0",
                 C, NH, B, T);
}
}  // namespace

void CudaBackend::attention_forward(float* out, float* att, const float* qkv, int B, int T, int C,
                                    int NH) {
  check_attention_geometry(B, T, C, NH);
  use_device();
  ck::attention_forward(cublas_, stream_, out, att, qkv, B, T, C, NH);
}

void CudaBackend::attention_backward(float* dqkv, float* scratch, const float* dout,
                                     const float* qkv, const float* att, int B, int T, int C,
                                     int NH) {
  check_attention_geometry(B, T, C, NH);
  use_device();
  ck::attention_backward(cublas_, stream_, dqkv, scratch, dout, qkv, att, B, T, C, NH);
}

void CudaBackend::gelu_forward(float* out, const float* inp, size_t n) {
  use_device();
  ck::gelu_forward(stream_, out, inp, n);
}

void CudaBackend::gelu_backward(float* dinp, const float* inp, const float* dout, size_t n) {
  use_device();
  ck::gelu_backward(stream_, dinp, inp, dout, n);
}

void CudaBackend::residual_forward(float* out, const float* a, const float* b, size_t n) {
  use_device();
  ck::residual_forward(stream_, out, a, b, n);
}

void CudaBackend::crossentropy_forward(float* losses, float* probs, const float* logits,
                                       const int32_t* targets, int N, int V) {
  use_device();
  std::lock_guard lock(target_mutex_);
  ck::crossentropy_forward(stream_, bad_row_, losses, probs, logits, targets, N, V);
  targets_queued_ = true;
  target_vocab_ = V;
}

void CudaBackend::crossentropy_backward(float* dlogits, const float* probs, const int32_t* targets,
                                        float scale, int N, int V) {
  use_device();
  std::lock_guard lock(target_mutex_);
  ck::crossentropy_backward(stream_, bad_row_, dlogits, probs, targets, scale, N, V);
  targets_queued_ = true;
  target_vocab_ = V;
}

void CudaBackend::reserve_partials(size_t chunks) {
  if (chunks <= partials_capacity_) return;
  if (partials_) check(cudaFree(partials_), "cudaFree (sum partials)");
  partials_ = nullptr;
  partials_capacity_ = 0;
  check(cudaMalloc(&partials_, chunks * sizeof(double)), "cudaMalloc (sum partials)");
  partials_capacity_ = chunks;
}

double CudaBackend::chunked_sum(const float* x, size_t n, bool squares) {
  if (n == 0) return 0.0;
  use_device();
  std::lock_guard lock(scratch_mutex_);
  const size_t chunks = ck::sum_chunks(n);
  reserve_partials(chunks);
  ck::chunk_sums(stream_, partials_, x, n, squares);
  std::vector<double> partials(chunks);
  check(cudaMemcpyAsync(partials.data(), partials_, chunks * sizeof(double), cudaMemcpyDeviceToHost,
                        stream_),
        "cudaMemcpyAsync (sum partials)");
  wait_for_stream("cudaStreamSynchronize (sum)");
  double total = 0.0;
  for (double p : partials) total += p;  // chunk order
  return total;
}

double CudaBackend::sum(const float* x, size_t n) {
  return chunked_sum(x, n, false);
}

double CudaBackend::sum_of_squares(const float* x, size_t n) {
  return chunked_sum(x, n, true);
}

void CudaBackend::sums_of_squares(double* out, const float* const* xs, const size_t* ns,
                                  size_t count) {
  use_device();
  std::lock_guard lock(scratch_mutex_);
  size_t chunks = 0;
  for (size_t i = 0; i < count; ++i) chunks += ck::sum_chunks(ns[i]);
  if (chunks == 0) {
    for (size_t i = 0; i < count; ++i) out[i] = 0.0;
    return;
  }
  reserve_partials(chunks);
  size_t at = 0;
  for (size_t i = 0; i < count; ++i) {
    ck::chunk_sums(stream_, partials_ + at, xs[i], ns[i], true);
    at += ck::sum_chunks(ns[i]);
  }
  std::vector<double> partials(chunks);
  check(cudaMemcpyAsync(partials.data(), partials_, chunks * sizeof(double), cudaMemcpyDeviceToHost,
                        stream_),
        "cudaMemcpyAsync (sums of squares)");
  wait_for_stream("cudaStreamSynchronize (sums of squares)");
  at = 0;
  for (size_t i = 0; i < count; ++i) {  // each tensor's chunks in chunk order: chunked_sum's bits
    double total = 0.0;
    const size_t end = at + ck::sum_chunks(ns[i]);
    for (; at < end; ++at) total += partials[at];
    out[i] = total;
  }
}

void CudaBackend::adamw_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                               size_t n, const AdamWParams& hp) {
  use_device();
  // The CPU's scalars, bias corrections included (kernels/adamw.h), so the bits agree.
  ck::adamw_update(stream_, param, grad, exp_avg, exp_avg_sq, n, adamw_scalars(hp));
}

void CudaBackend::scale_inplace(float* x, size_t n, float s) {
  use_device();
  ck::scale_inplace(stream_, x, n, s);
}

void CudaBackend::add_inplace(float* x, const float* y, size_t n) {
  use_device();
  ck::add_inplace(stream_, x, y, n);
}

std::unique_ptr<Backend> make_cuda_backend(int gpu) {
  CONVEYOR_CHECK(gpu >= 0, "make_cuda_backend: GPU {} is not an index (choose_rank_gpu picks one)",
                 gpu);
  // The usage errors a user can cause (no GPU, no such GPU), said by the device seam.
  return std::make_unique<CudaBackend>(choose_rank_gpu(gpu, 0).index);
}

}  // namespace conveyor::kernels
