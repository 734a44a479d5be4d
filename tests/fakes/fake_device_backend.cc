#include "tests/fakes/fake_device_backend.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <new>
#include <string_view>

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

FakeDeviceBackend::FakeDeviceBackend() : cpu_(1) {
  bound_.insert(std::this_thread::get_id());
}

void FakeDeviceBackend::bind_thread() {
  std::lock_guard lock(mu_);
  bound_.insert(std::this_thread::get_id());
}

void FakeDeviceBackend::account_pointers(const char* op, bool waits,
                                         const std::vector<const void*>& pointers) {
  std::lock_guard lock(mu_);
  if (!bound_.contains(std::this_thread::get_id()) && unbound_calls_++ == 0) first_unbound_ = op;
  if (waits) {
    ++host_waits_;
    queued_.clear();
  } else {
    queued_.insert(queued_.end(), pointers.begin(), pointers.end());
  }
}

size_t FakeDeviceBackend::host_waits() const {
  std::lock_guard lock(mu_);
  return host_waits_;
}

bool FakeDeviceBackend::queued_work_touches(const void* p, size_t bytes) const {
  const auto* begin = static_cast<const char*>(p);
  std::lock_guard lock(mu_);
  for (const void* q : queued_) {
    const auto* at = static_cast<const char*>(q);
    if (at >= begin && at < begin + bytes) return true;
  }
  return false;
}

size_t FakeDeviceBackend::unbound_calls() const {
  std::lock_guard lock(mu_);
  return unbound_calls_;
}

std::string FakeDeviceBackend::first_unbound_call() const {
  std::lock_guard lock(mu_);
  return first_unbound_;
}

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
  account("zero", false, p);
  Open o(*this);
  cpu_.zero(p, bytes);
}
void FakeDeviceBackend::copy(void* dst, const void* src, size_t bytes) {
  account("copy", false, dst, src);
  Open o(*this);
  cpu_.copy(dst, src, bytes);
}
void FakeDeviceBackend::to_host(void* host_dst, const void* src, size_t bytes) {
  account("to_host", true);
  Open o(*this);
  cpu_.to_host(host_dst, src, bytes);
}
void FakeDeviceBackend::from_host(void* dst, const void* host_src, size_t bytes) {
  {
    std::lock_guard lock(mu_);
    ++from_host_calls_;
  }
  account("from_host", true);
  Open o(*this);
  cpu_.from_host(dst, host_src, bytes);
}
void FakeDeviceBackend::dma_read(void* host_dst, const void* src, size_t bytes) {
  Open o(*this);
  cpu_.to_host(host_dst, src, bytes);
}
void FakeDeviceBackend::dma_write(void* dst, const void* host_src, size_t bytes) {
  Open o(*this);
  cpu_.from_host(dst, host_src, bytes);
}
void FakeDeviceBackend::synchronize() {
  account("synchronize", true);
}

namespace {
// The ops whose result the CUDA backend reads back on the host, waiting for its stream.
bool op_waits(std::string_view op) {
  return op == "sum" || op == "sum_of_squares" || op == "sums_of_squares";
}
}  // namespace

#define CONVEYOR_KERNEL_OP(ret, name, params, args)                           \
  ret FakeDeviceBackend::name params {                                        \
    [this](const auto&... a) { account(#name, op_waits(#name), a...); } args; \
    Open o(*this);                                                            \
    return cpu_.name args;                                                    \
  }
#include "kernels/ops.def"

}  // namespace conveyor::test
