// The CUDA backend: every kernels::Backend op on one GPU, in device memory, fp32.
//
// Memory: cudaMalloc (never managed memory), zero-filled before alloc returns. Work: one
// compute stream per backend (a blocking stream, so it is also ordered against the legacy
// default stream); every op is queued on it in call order, so ops complete in call order,
// and synchronize() waits for the stream. to_host and from_host are synchronous (they
// return when the bytes have arrived), so host memory may be reused at once; copy and zero
// are queued on the stream.
//
// Numerics (kernels/cuda/ops.h says which ops give the CPU's bits and which a tolerance):
// - fp32 everywhere; cuBLAS in pedantic math mode (CUBLAS_PEDANTIC_MATH, compute type 32F):
//   no TF32, no reduced-precision or emulated paths, whatever the environment says.
// - Deterministic: one stream, a fixed cuBLAS workspace (cublasSetWorkspace, 32 MiB, as
//   Hopper wants), no atomics in reductions, splits fixed by the shape. cuBLAS promises the
//   same bits only on the same GPU architecture and SM count with the same cuBLAS version,
//   so describe() names all three. cuBLAS may also pick its kernel by the operands'
//   alignment: for the same bits in every partition, callers must give each tensor the
//   same alignment (offsets in multiples of 256 bytes, say) whichever stage holds it.
// - sum() and sum_of_squares(): double, in chunks of 4096 elements (each added in index order
//   on the GPU), the chunk sums then added in chunk order on the host. For n <= 4096 that is
//   the CPU's index order, the same bits; beyond, it differs from the CPU in the last bits.
//   Both return to the host, so they wait for the stream.
// - Cross-entropy checks its targets on the device (ops.h) without waiting for it: an op with
//   a target outside [0, V) writes nothing, and the next call that waits for the stream
//   (synchronize, to_host, from_host, sum, sum_of_squares, sums_of_squares) throws
//   Error(kRuntime) naming the row. Callers check targets on the host before they copy them in
//   (the executor does), so this is the backstop, and it costs no synchronisation.
// - sums_of_squares(): every tensor's chunk sums in one pass of launches, read back with one
//   wait; each tensor's chunk sums are added in chunk order, so each result has
//   sum_of_squares()'s bits.
//
// Threads: every public function sets this backend's GPU as the calling thread's current
// device first, so any thread may call it; bind_thread() does only that, for threads that call
// CUDA outside the backend too. Ops may be queued concurrently from several threads; the
// shared scratch (sum partials, the target-check record) is guarded by mutexes.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <memory>
#include <mutex>
#include <string>

#include "kernels/backend.h"

namespace conveyor::kernels {

class CudaBackend final : public Backend {
 public:
  // gpu: the device index (0 <= gpu < cudaGetDeviceCount). Throws Error(kRuntime) when CUDA
  // fails to set it up. make_cuda_backend below does the checks a user can get wrong.
  explicit CudaBackend(int gpu);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  const char* name() const override { return "cuda"; }
  // "cuda (GPU 0: NVIDIA H200, sm_90, 132 SMs; cuBLAS 13.0.0; fp32, TF32 off)"
  std::string describe() const override { return describe_; }
  MemoryType memory_type() const override { return MemoryType::kDevice; }
  int gpu() const { return gpu_; }

  void zero(void* p, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void to_host(void* host_dst, const void* src, size_t bytes) override;
  void from_host(void* dst, const void* host_src, size_t bytes) override;
  void synchronize() override;
  void bind_thread() override;
  // Every op of kernels/ops.def (cuda_backend.cc: each queues its launcher of kernels/cuda/ops.h).
#define CONVEYOR_KERNEL_OP(ret, name, params, args) ret name params override;
#include "kernels/ops.def"

 protected:
  void* allocate_bytes(size_t bytes) const override;
  void free_bytes(void* p) const noexcept override;

 private:
  void release() noexcept;  // frees what the constructor got, in reverse order
  void use_device() const;  // makes gpu_ current on the calling thread
  double chunked_sum(const float* x, size_t n, bool squares);
  // REQUIRES scratch_mutex_ held: partials_ holds at least `chunks` doubles.
  void reserve_partials(size_t chunks);
  // Waits for the stream (`what` names the wait in errors). If a cross-entropy op ran since
  // the last wait, reads the target check's record with it and throws Error(kRuntime) for a
  // bad row (resetting the record).
  void wait_for_stream(const char* what);

  int gpu_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  void* cublas_workspace_ = nullptr;
  std::string describe_;

  std::mutex scratch_mutex_;    // guards the sum partials
  double* partials_ = nullptr;  // device, partials_capacity_ doubles
  size_t partials_capacity_ = 0;

  std::mutex target_mutex_;      // guards the target check's record; taken after scratch_mutex_
  int* bad_row_ = nullptr;       // device: ops.h's sticky record
  int* bad_row_host_ = nullptr;  // pinned: where a wait reads it
  bool targets_queued_ = false;  // a cross-entropy op ran since the last wait
  int target_vocab_ = 0;         // V of the last cross-entropy op, for the message
};

// The backend for GPU `gpu`, the index choose_rank_gpu (kernels/device.h) chose for this rank
// (REQUIRES gpu >= 0). Throws Error(kUsage) when no GPU is found (the message gives
// cudaGetDeviceCount's reason) or when gpu is out of range.
std::unique_ptr<Backend> make_cuda_backend(int gpu);

}  // namespace conveyor::kernels
