// HostBuffer<T>: a fixed-size, zero-filled array in host memory for large, long-lived
// buffers that the transport sends from or receives into (activation slots, benchmark
// buffers).
//
// Why not std::vector: on 4 KiB pages, every copy of a large message through the kernel
// (UCX's TCP transport, cross-memory attach on one host) walks a new page, and a TLB miss
// each time; in a VM each miss costs a nested page walk. Buffers of at least
// kHugePageMinBytes are therefore aligned to 2 MiB, their size rounded up to whole huge
// pages, and advised as transparent huge pages (madvise MADV_HUGEPAGE) before their first
// touch. That costs at most one huge page of memory per buffer. Measured on the dev VM
// against ucx_perftest: 1.8-2.2x its shared-memory bandwidth at 1-64 MiB (was 1.0x), and
// 0.98x its TCP bandwidth at 64 MiB (was 0.93x); docs/BENCHMARKS.md, "Buffers on huge pages".
// Where the kernel has transparent huge pages off, the advice is ignored and the buffer is
// an ordinary aligned allocation.
//
// Contract:
// - data() is aligned to 64 bytes; to kHugePageBytes when size() * sizeof(T) is at least
//   kHugePageMinBytes. Every element starts as zero bits (T must be trivially copyable).
// - Move-only; size fixed at construction. An empty buffer has data() == nullptr.
// - Thread safety: as for a plain array.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

namespace conveyor {

inline constexpr size_t kHugePageBytes = size_t{2} << 20;
inline constexpr size_t kHugePageMinBytes = size_t{1} << 20;

// Zero-filled block of `bytes` bytes with the alignment above; nullptr for 0 bytes.
// Throws std::bad_alloc when memory runs out. Release with free_host_bytes.
void* allocate_host_bytes(size_t bytes);
void free_host_bytes(void* p) noexcept;

template <typename T>
class HostBuffer {
  static_assert(std::is_trivially_copyable_v<T>, "HostBuffer holds plain data only");

 public:
  HostBuffer() = default;
  explicit HostBuffer(size_t count)
      : data_(static_cast<T*>(allocate_host_bytes(bytes_for(count)))), size_(count) {}
  HostBuffer(HostBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  HostBuffer& operator=(HostBuffer&& o) noexcept {
    if (this != &o) {
      free_host_bytes(data_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  ~HostBuffer() { free_host_bytes(data_); }

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  size_t bytes() const { return size_ * sizeof(T); }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }

 private:
  static size_t bytes_for(size_t count) {
    if (count > SIZE_MAX / sizeof(T)) throw std::bad_alloc();
    return count * sizeof(T);
  }

  T* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace conveyor
