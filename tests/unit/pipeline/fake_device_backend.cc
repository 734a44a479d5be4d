#include "tests/unit/pipeline/fake_device_backend.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <new>

namespace conveyor::test {

namespace {

size_t page_rounded(size_t bytes) {
  const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

}  // namespace

class FakeDeviceBackend::Open {
 public:
  explicit Open(const FakeDeviceBackend& b) : b_(b) {
    std::lock_guard lock(b_.mu_);
    if (b_.open_++ == 0) b_.set_access(true);
  }
  ~Open() {
    std::lock_guard lock(b_.mu_);
    if (--b_.open_ == 0) b_.set_access(false);
  }
  Open(const Open&) = delete;
  Open& operator=(const Open&) = delete;

 private:
  const FakeDeviceBackend& b_;
};

FakeDeviceBackend::FakeDeviceBackend() : cpu_(1) {}

FakeDeviceBackend::~FakeDeviceBackend() {
  for (auto& [base, bytes] : mappings_) munmap(const_cast<char*>(base), bytes);
}

void FakeDeviceBackend::set_access(bool open) const {
  for (auto& [base, bytes] : mappings_) {
    if (mprotect(const_cast<char*>(base), bytes, open ? PROT_READ | PROT_WRITE : PROT_NONE) != 0) {
      std::perror("FakeDeviceBackend: mprotect");
      std::abort();
    }
  }
}

size_t FakeDeviceBackend::copies_from_host() const {
  std::lock_guard lock(mu_);
  return from_host_calls_;
}

void* FakeDeviceBackend::allocate_bytes(size_t bytes) const {
  if (bytes == 0) return nullptr;
  const size_t mapped = page_rounded(bytes);
  std::lock_guard lock(mu_);
  void* p = mmap(nullptr, mapped, open_ > 0 ? PROT_READ | PROT_WRITE : PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);  // zero-filled
  if (p == MAP_FAILED) throw std::bad_alloc();
  mappings_[static_cast<const char*>(p)] = mapped;
  return p;
}

void FakeDeviceBackend::free_bytes(void* p) const noexcept {
  std::lock_guard lock(mu_);
  auto it = mappings_.find(static_cast<const char*>(p));
  if (it == mappings_.end()) return;
  munmap(p, it->second);
  mappings_.erase(it);
}

void FakeDeviceBackend::zero(void* p, size_t bytes) {
  Open o(*this);
  cpu_.zero(p, bytes);
}
void FakeDeviceBackend::copy(void* dst, const void* src, size_t bytes) {
  Open o(*this);
  cpu_.copy(dst, src, bytes);
}
void FakeDeviceBackend::to_host(void* host_dst, const void* src, size_t bytes) {
  Open o(*this);
  cpu_.to_host(host_dst, src, bytes);
}
void FakeDeviceBackend::from_host(void* dst, const void* host_src, size_t bytes) {
  {
    std::lock_guard lock(mu_);
    ++from_host_calls_;
  }
  Open o(*this);
  cpu_.from_host(dst, host_src, bytes);
}
void FakeDeviceBackend::embedding_forward(float* out, const int32_t* tokens, const float* wte,
                                          const float* wpe, int B, int T, int C) {
  Open o(*this);
  cpu_.embedding_forward(out, tokens, wte, wpe, B, T, C);
}
void FakeDeviceBackend::embedding_backward(float* dwte, float* dwpe, const float* dout,
                                           const int32_t* tokens, int B, int T, int C) {
  Open o(*this);
  cpu_.embedding_backward(dwte, dwpe, dout, tokens, B, T, C);
}
void FakeDeviceBackend::layernorm_forward(float* out, float* mean, float* rstd, const float* inp,
                                          const float* weight, const float* bias, int N, int C) {
  Open o(*this);
  cpu_.layernorm_forward(out, mean, rstd, inp, weight, bias, N, C);
}
void FakeDeviceBackend::layernorm_backward_input(float* dinp, const float* dout, const float* inp,
                                                 const float* weight, const float* mean,
                                                 const float* rstd, int N, int C) {
  Open o(*this);
  cpu_.layernorm_backward_input(dinp, dout, inp, weight, mean, rstd, N, C);
}
void FakeDeviceBackend::layernorm_backward_weight(float* dweight, float* dbias, const float* dout,
                                                  const float* inp, const float* mean,
                                                  const float* rstd, int N, int C) {
  Open o(*this);
  cpu_.layernorm_backward_weight(dweight, dbias, dout, inp, mean, rstd, N, C);
}
void FakeDeviceBackend::linear_forward(float* out, const float* inp, const float* weight,
                                       const float* bias, int N, int IC, int OC) {
  Open o(*this);
  cpu_.linear_forward(out, inp, weight, bias, N, IC, OC);
}
void FakeDeviceBackend::linear_backward_input(float* dinp, const float* dout, const float* weight,
                                              int N, int IC, int OC) {
  Open o(*this);
  cpu_.linear_backward_input(dinp, dout, weight, N, IC, OC);
}
void FakeDeviceBackend::linear_backward_weight(float* dweight, float* dbias, const float* dout,
                                               const float* inp, int N, int IC, int OC) {
  Open o(*this);
  cpu_.linear_backward_weight(dweight, dbias, dout, inp, N, IC, OC);
}
void FakeDeviceBackend::attention_forward(float* out, float* att, const float* qkv, int B, int T,
                                          int C, int NH) {
  Open o(*this);
  cpu_.attention_forward(out, att, qkv, B, T, C, NH);
}
void FakeDeviceBackend::attention_backward(float* dqkv, float* scratch, const float* dout,
                                           const float* qkv, const float* att, int B, int T, int C,
                                           int NH) {
  Open o(*this);
  cpu_.attention_backward(dqkv, scratch, dout, qkv, att, B, T, C, NH);
}
void FakeDeviceBackend::gelu_forward(float* out, const float* inp, size_t n) {
  Open o(*this);
  cpu_.gelu_forward(out, inp, n);
}
void FakeDeviceBackend::gelu_backward(float* dinp, const float* inp, const float* dout, size_t n) {
  Open o(*this);
  cpu_.gelu_backward(dinp, inp, dout, n);
}
void FakeDeviceBackend::residual_forward(float* out, const float* a, const float* b, size_t n) {
  Open o(*this);
  cpu_.residual_forward(out, a, b, n);
}
void FakeDeviceBackend::crossentropy_forward(float* losses, float* probs, const float* logits,
                                             const int32_t* targets, int N, int V) {
  Open o(*this);
  cpu_.crossentropy_forward(losses, probs, logits, targets, N, V);
}
void FakeDeviceBackend::crossentropy_backward(float* dlogits, const float* probs,
                                              const int32_t* targets, float scale, int N, int V) {
  Open o(*this);
  cpu_.crossentropy_backward(dlogits, probs, targets, scale, N, V);
}
double FakeDeviceBackend::sum(const float* x, size_t n) {
  Open o(*this);
  return cpu_.sum(x, n);
}
void FakeDeviceBackend::adamw_update(float* param, const float* grad, float* exp_avg,
                                     float* exp_avg_sq, size_t n, const kernels::AdamWParams& hp) {
  Open o(*this);
  cpu_.adamw_update(param, grad, exp_avg, exp_avg_sq, n, hp);
}
double FakeDeviceBackend::sum_of_squares(const float* x, size_t n) {
  Open o(*this);
  return cpu_.sum_of_squares(x, n);
}
void FakeDeviceBackend::scale_inplace(float* x, size_t n, float s) {
  Open o(*this);
  cpu_.scale_inplace(x, n, s);
}
void FakeDeviceBackend::add_inplace(float* x, const float* y, size_t n) {
  Open o(*this);
  cpu_.add_inplace(x, y, n);
}

}  // namespace conveyor::test
