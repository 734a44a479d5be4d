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
// so a backend must outlive its buffers. Pointers passed to the ops below must point into
// this backend's memory; to_host / from_host move bytes across when the caller holds host
// data (checkpoints, samplers, tests).
//
// Op contracts (shapes and semantics of every op; the CPU reference in kernels/cpu/ops.h
// implements them, and tests/unit/kernels checks every backend against a double reference):
// - Row-major; activations are [N, C] with N = B*T rows (B sequences of T tokens). Linear
//   weights are [out, in] like PyTorch's nn.Linear: y = x @ W^T + b.
// - Every backward op ACCUMULATES (+=) into its gradient outputs; callers zero what they own.
//   Weight gradients are summed over micro-batches in the order the caller runs them.
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

#include "kernels/device.h"

namespace conveyor::kernels {

struct AdamWParams {
  float lr = 0;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0;  // 0 for tensors that are not decayed
  int step = 1;            // 1-based, for bias correction
};

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

  // ---- Embedding: out[b,t,:] = wte[tokens[b,t],:] + wpe[t,:] -----------------------------
  virtual void embedding_forward(float* out, const int32_t* tokens, const float* wte,
                                 const float* wpe, int B, int T, int C) = 0;
  // dwte[tok] += dout; dwpe[t] += dout, rows in ascending (b, t) order.
  virtual void embedding_backward(float* dwte, float* dwpe, const float* dout,
                                  const int32_t* tokens, int B, int T, int C) = 0;

  // ---- LayerNorm over the last dim, eps 1e-5; mean, rstd [N] saved for backward ----------
  virtual void layernorm_forward(float* out, float* mean, float* rstd, const float* inp,
                                 const float* weight, const float* bias, int N, int C) = 0;
  virtual void layernorm_backward_input(float* dinp, const float* dout, const float* inp,
                                        const float* weight, const float* mean, const float* rstd,
                                        int N, int C) = 0;
  virtual void layernorm_backward_weight(float* dweight, float* dbias, const float* dout,
                                         const float* inp, const float* mean, const float* rstd,
                                         int N, int C) = 0;

  // ---- Linear: out[N,OC] = inp[N,IC] @ weight[OC,IC]^T + bias[OC] (bias may be null) -----
  virtual void linear_forward(float* out, const float* inp, const float* weight, const float* bias,
                              int N, int IC, int OC) = 0;
  // dinp[N,IC] += dout[N,OC] @ weight[OC,IC]
  virtual void linear_backward_input(float* dinp, const float* dout, const float* weight, int N,
                                     int IC, int OC) = 0;
  // dweight[OC,IC] += dout^T @ inp; dbias[OC] += column sums of dout (dbias may be null).
  virtual void linear_backward_weight(float* dweight, float* dbias, const float* dout,
                                      const float* inp, int N, int IC, int OC) = 0;

  // ---- Causal multi-head self-attention ---------------------------------------------------
  // qkv [B,T,3C] (q, k, v; head h uses columns h*C/NH ..); att [B,NH,T,T] softmax saved for
  // backward (upper triangle zero); out [B,T,C]. Error(kRuntime) if C % NH != 0
  // (the configuration is validated before any op runs).
  virtual void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C,
                                 int NH) = 0;
  // dqkv += d out/d qkv. scratch: at least B*NH*T*T floats, contents ignored.
  virtual void attention_backward(float* dqkv, float* scratch, const float* dout, const float* qkv,
                                  const float* att, int B, int T, int C, int NH) = 0;

  // ---- GELU (tanh approximation), residual ----------------------------------------------
  virtual void gelu_forward(float* out, const float* inp, size_t n) = 0;
  virtual void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n) = 0;
  virtual void residual_forward(float* out, const float* a, const float* b, size_t n) = 0;

  // ---- Softmax cross-entropy over V classes ----------------------------------------------
  // probs [N,V] saved for backward; losses [N] = -log p[target].
  virtual void crossentropy_forward(float* losses, float* probs, const float* logits,
                                    const int32_t* targets, int N, int V) = 0;
  // dlogits += (probs - onehot(target)) * scale. Both throw Error(kRuntime) for a target
  // outside [0, V), before writing.
  virtual void crossentropy_backward(float* dlogits, const float* probs, const int32_t* targets,
                                     float scale, int N, int V) = 0;
  // Sum of losses[0..n) in double, in index order (the micro-batch's loss).
  virtual double sum(const float* x, size_t n) = 0;

  // ---- Optimizer, gradient norm and tied-gradient arithmetic ------------------------------
  // Decoupled weight decay: p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p).
  virtual void adamw_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                            size_t n, const AdamWParams& hp) = 0;
  // Sum of squares in double, in index order (so every backend gives the same bits).
  virtual double sum_of_squares(const float* x, size_t n) = 0;
  virtual void scale_inplace(float* x, size_t n, float s) = 0;       // x *= s
  virtual void add_inplace(float* x, const float* y, size_t n) = 0;  // x += y

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
