#include "tests/fakes/fake_device_backend.h"

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
#define CONVEYOR_KERNEL_OP(ret, name, params, args) \
  ret FakeDeviceBackend::name params {              \
    Open o(*this);                                  \
    return cpu_.name args;                          \
  }
#include "kernels/ops.def"

}  // namespace conveyor::test
