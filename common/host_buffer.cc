#include "common/host_buffer.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <new>

namespace conveyor {

namespace {
constexpr size_t kCacheLineBytes = 64;

size_t round_up(size_t n, size_t to) {
  return (n + to - 1) / to * to;
}
}  // namespace

void* allocate_host_bytes(size_t bytes) {
  if (bytes == 0) return nullptr;
  const bool huge = bytes >= kHugePageMinBytes;
  const size_t align = huge ? kHugePageBytes : kCacheLineBytes;
  // aligned_alloc wants a size that is a multiple of the alignment.
  void* p = std::aligned_alloc(align, round_up(bytes, align));
  if (p == nullptr) throw std::bad_alloc();
  // The advice must come before the first touch: the zero fill below faults the pages in,
  // and that is when the kernel picks their size. A kernel without transparent huge pages
  // rejects the advice; the buffer then simply has small pages.
  if (huge) (void)madvise(p, round_up(bytes, align), MADV_HUGEPAGE);
  std::memset(p, 0, bytes);
  return p;
}

void free_host_bytes(void* p) noexcept {
  std::free(p);
}

}  // namespace conveyor
