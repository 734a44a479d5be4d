// Backend buffers and copies, on every backend (see backend_test_util.h): what the model,
// the checkpoints and the transport rely on to move bytes in and out of a backend.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "kernels/backend.h"
#include "tests/unit/kernels/backend_test_util.h"
#include "tests/unit/kernels/kernel_test_util.h"

using namespace conveyor::kernels;
using namespace conveyor::kernels_test;

BACKEND_TEST_CASE("backend buffers are zero-filled and copies move bytes exactly", "[kernels]") {
  Buffer<float> a = backend.alloc<float>(1000);
  CHECK(a.size() == 1000);
  CHECK(a.bytes() == 1000 * sizeof(float));
  CHECK(a.memory_type() == backend.memory_type());
  CHECK(download(backend, a) == std::vector<float>(1000, 0.0f));

  // Bit patterns a float copy could change (NaN payload, -0, denormal) survive every copy.
  auto host = random_floats(1000, 110);
  const uint32_t patterns[] = {0x7fc01234u, 0x80000000u, 0x00000001u};
  for (size_t i = 0; i < 3; ++i) std::memcpy(&host[i], &patterns[i], sizeof(float));
  backend.from_host(a.data(), host.data(), a.bytes());
  backend.synchronize();
  expect_same_bits(download(backend, a), host, "from_host then to_host");

  Buffer<float> b = backend.alloc<float>(1000);
  backend.copy(b.data(), a.data(), a.bytes());
  expect_same_bits(download(backend, b), host, "copy within the backend");

  backend.zero(b.data() + 10, 20 * sizeof(float));  // a sub-range only
  auto want = host;
  std::fill(want.begin() + 10, want.begin() + 30, 0.0f);
  expect_same_bits(download(backend, b), want, "zero of a sub-range");

  const std::vector<int32_t> ints = {-1, 0, 7, 1 << 30};
  expect_same_bits(download(backend, upload(backend, ints)), ints, "int32 round trip");
}

BACKEND_TEST_CASE("backend buffers of zero elements are empty and moves transfer ownership",
                  "[kernels]") {
  Buffer<float> none = backend.alloc<float>(0);
  CHECK(none.empty());
  CHECK(none.data() == nullptr);
  CHECK(download(backend, none).empty());

  Buffer<float> a = upload(backend, std::vector<float>{1.0f, 2.0f, 3.0f});
  const float* p = a.data();
  Buffer<float> b = std::move(a);
  CHECK(b.data() == p);
  CHECK(b.size() == 3);
  CHECK(a.data() == nullptr);  // NOLINT(bugprone-use-after-move): moved-from is empty
  CHECK(a.size() == 0);
  a = std::move(b);
  CHECK(download(backend, a) == std::vector<float>{1.0f, 2.0f, 3.0f});
}

#ifdef CONVEYOR_WITH_CUDA
TEST_CASE("make_backend(cuda) gives a device backend or says no GPU was found", "[kernels]") {
  // Runs on every machine of a CUDA build: with a GPU, the backend works on device memory and
  // names its GPU; without, the error is a usage error (exit 2) that says why.
  BackendOptions options;
  options.device = DeviceKind::kCuda;
  try {
    auto backend = make_backend(options);
    CHECK(std::string(backend->name()) == "cuda");
    CHECK(backend->memory_type() == MemoryType::kDevice);
    CHECK(backend->describe().find("TF32 off") != std::string::npos);
    options.gpu = 1 << 20;
    CHECK_THROWS_AS(make_backend(options), conveyor::Error);
  } catch (const conveyor::Error& e) {
    INFO(e.what());
    CHECK(e.kind() == conveyor::ErrorKind::kUsage);
    CHECK(std::string(e.what()).find("no GPU was found") != std::string::npos);
    CHECK(std::string(e.what()).find("cudaGetDeviceCount") != std::string::npos);
  }
  CHECK(backend_names().find("cuda") != std::string::npos);
}
#endif
