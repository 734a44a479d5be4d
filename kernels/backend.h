// The compute backend: every op the model, the optimizer and the trainer run, and every
// buffer they run it on, through one object chosen at start (`--device cpu`, or `cuda` in
// builds with CONVEYOR_WITH_CUDA: kernels/cuda/cuda_backend.h). Which device and which GPU
// is the device seam's to say (kernels/device.h).
//
// Why a virtual interface: one call per op of a whole micro-batch (llm.c's function-per-op
// style), so the indirection costs nothing measurable, and a second backend is a second
// subclass that the same model code and the same kernel tests drive.
//
// Buffers: alloc<T>(n) returns a zero-filled, move-only Buffer<T> in the backend's memory
// (host memory for cpu). A Buffer knows its memory type and frees itself through the backend,
// so a backend must outlive its buffers. Pointers passed to the ops must point into
// this backend's memory; to_host / from_host move bytes across when the caller holds host
// data (checkpoints, samplers, tests).
//
// Ops: kernels/ops.def lists them once, each with its signature and contract (shapes,
// semantics), after the conventions they share (layouts; backward ops ACCUMULATE). The CPU
// reference in kernels/cpu/ops.h implements them, and tests/unit/kernels checks every backend
// against a double reference. Besides, for every op:
// - Deterministic: the same inputs give the same bits on every call, whatever the number of
//   threads; results do not depend on how the caller partitions the model.
// - Ops complete in call order on one backend (one stream). synchronize() returns when every
//   op issued so far is done and its results are visible to the host and the transport.
//
// Thread safety: ops may run concurrently from several threads on disjoint outputs; alloc
// and the copies are thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "kernels/adamw.h"  // AdamWParams, which adamw_update takes
#include "kernels/device.h"

namespace conveyor::kernels {

class Backend;

// A zero-filled array of T in one backend's memory. Move-only; size fixed at allocation.
template <typename T>
class Buffer {
  static_assert(std::is_trivially_copyable_v<T>, "a Buffer holds plain data only");

 public:
  Buffer() = default;
  Buffer(Buffer&& o) noexcept
      : owner_(std::exchange(o.owner_, nullptr)),
        data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)) {}
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      release();
      owner_ = std::exchange(o.owner_, nullptr);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { release(); }

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  size_t bytes() const { return size_ * sizeof(T); }
  bool empty() const { return size_ == 0; }
  MemoryType memory_type() const;

 private:
  friend class Backend;
  Buffer(const Backend* owner, T* data, size_t size) : owner_(owner), data_(data), size_(size) {}
  void release();

  const Backend* owner_ = nullptr;
  T* data_ = nullptr;
  size_t size_ = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual const char* name() const = 0;  // "cpu", "cuda"
  // One line for the start-up log: the name and what decides its bits ("cpu (OpenBLAS
  // Haswell kernels)": BLAS kernels differ per core type, and so do their results).
  virtual std::string describe() const { return name(); }
  virtual MemoryType memory_type() const = 0;

  // Zero-filled. Throws std::bad_alloc (or Error(kRuntime) naming the size) when memory runs
  // out; count * sizeof(T) overflowing is std::bad_alloc.
  template <typename T>
  Buffer<T> alloc(size_t count) const {
    if (count > SIZE_MAX / sizeof(T)) throw std::bad_alloc();
    return Buffer<T>(this, static_cast<T*>(allocate_bytes(count * sizeof(T))), count);
  }

  // ---- Memory ----------------------------------------------------------------------------
  virtual void zero(void* p, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;            // within backend
  virtual void to_host(void* host_dst, const void* src, size_t bytes) = 0;    // backend -> host
  virtual void from_host(void* dst, const void* host_src, size_t bytes) = 0;  // host -> backend
  virtual void synchronize() = 0;
  // Makes this backend's device the calling thread's current one (cudaSetDevice on the CUDA
  // backend; nothing on the CPU). The thread that made the backend is bound; every other
  // thread that works for it (the gradient all-reduce, the checkpoint snapshot) calls this
  // first, so that what it runs outside the backend's own ops (pinned allocations, a
  // CUDA-aware transport) uses this rank's GPU and never opens a context on GPU 0.
  virtual void bind_thread() {}

  // ---- Ops: one pure virtual function per entry of kernels/ops.def, which holds their
  // signatures and contracts -------------------------------------------------------------
#define CONVEYOR_KERNEL_OP(ret, name, params, args) virtual ret name params = 0;
#include "kernels/ops.def"

 protected:
  virtual void* allocate_bytes(size_t bytes) const = 0;  // zero-filled; nullptr for 0
  virtual void free_bytes(void* p) const noexcept = 0;

 private:
  template <typename T>
  friend class Buffer;
};

template <typename T>
MemoryType Buffer<T>::memory_type() const {
  return owner_ ? owner_->memory_type() : MemoryType::kHost;
}

template <typename T>
void Buffer<T>::release() {
  if (owner_ && data_) owner_->free_bytes(data_);
  data_ = nullptr;
}

struct BackendOptions {
  DeviceKind device = DeviceKind::kCpu;
  int threads = 0;  // cpu: kernel threads; 0 = $CONVEYOR_CPU_THREADS or all cores
  // cuda: the GPU to run on. A rank of a job passes the one choose_rank_gpu (device.h) chose
  // for its local rank; nothing here looks at the launch environment.
  int gpu = 0;
};

// The backend for options.device. Throws Error(kUsage) for cuda when this build has no CUDA
// backend (naming the devices it offers), when no GPU is found (saying why), or when
// options.gpu does not exist.
std::unique_ptr<Backend> make_backend(const BackendOptions& options);
// The device names this build offers, comma-separated (for help texts and errors).
std::string backend_names();

}  // namespace conveyor::kernels
