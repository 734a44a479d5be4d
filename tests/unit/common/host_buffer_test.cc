// HostBuffer (common/host_buffer.h): what its users rely on. Activation slots start as zeros
// (the first micro-batch reads gradients that no one has written yet), large buffers are
// aligned for huge pages, and ownership moves without copying or leaking.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "common/host_buffer.h"

using conveyor::HostBuffer;
using conveyor::kHugePageBytes;
using conveyor::kHugePageMinBytes;

namespace {
bool all_zero(const HostBuffer<uint8_t>& b) {
  return std::all_of(b.data(), b.data() + b.size(), [](uint8_t x) { return x == 0; });
}
uintptr_t address(const void* p) {
  return reinterpret_cast<uintptr_t>(p);
}
}  // namespace

TEST_CASE("host buffers start zero-filled, also when their memory is reused", "[host_buffer]") {
  for (size_t bytes :
       {size_t{1}, size_t{4096} + 3, kHugePageMinBytes, kHugePageBytes, 3 * kHugePageBytes + 5}) {
    CAPTURE(bytes);
    {
      HostBuffer<uint8_t> dirty(bytes);
      REQUIRE(all_zero(dirty));
      std::memset(dirty.data(), 0xAB, bytes);
    }  // freed: the next allocation of this size may get the same memory back
    HostBuffer<uint8_t> fresh(bytes);
    REQUIRE(fresh.size() == bytes);
    CHECK(all_zero(fresh));
  }
  HostBuffer<float> floats(1000);
  CHECK(std::all_of(floats.data(), floats.data() + floats.size(), [](float x) { return x == 0; }));
  CHECK(floats.bytes() == 4000);
}

TEST_CASE("host buffers are cache-line aligned, and huge-page aligned when large",
          "[host_buffer]") {
  HostBuffer<uint8_t> small(100);
  CHECK(address(small.data()) % 64 == 0);
  HostBuffer<float> below(kHugePageMinBytes / sizeof(float) - 1);
  CHECK(address(below.data()) % 64 == 0);
  HostBuffer<float> large(kHugePageMinBytes / sizeof(float));
  CHECK(address(large.data()) % kHugePageBytes == 0);
  HostBuffer<uint8_t> odd(5 * kHugePageBytes + 1);
  CHECK(address(odd.data()) % kHugePageBytes == 0);
}

TEST_CASE("host buffers move their memory and an empty one holds none", "[host_buffer]") {
  HostBuffer<int32_t> empty;
  CHECK(empty.data() == nullptr);
  CHECK(empty.size() == 0);
  CHECK(HostBuffer<int32_t>(0).data() == nullptr);

  HostBuffer<int32_t> a(10);
  a[3] = 42;
  int32_t* memory = a.data();
  HostBuffer<int32_t> b(std::move(a));
  CHECK(b.data() == memory);
  CHECK(b[3] == 42);
  CHECK(a.data() ==
        nullptr);  // NOLINT(bugprone-use-after-move): moved-from state is part of the contract
  CHECK(a.size() == 0);

  HostBuffer<int32_t> c(5);
  c = std::move(b);  // c's own memory is released (ASan would report a leak)
  CHECK(c.data() == memory);
  CHECK(c.size() == 10);
}

TEST_CASE("a host buffer too large to address is refused, not truncated", "[host_buffer]") {
  CHECK_THROWS_AS(HostBuffer<double>(SIZE_MAX / 4), std::bad_alloc);
}
