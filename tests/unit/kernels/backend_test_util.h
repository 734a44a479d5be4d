// Kernel tests on every compiled-in backend (the way ggml's test-backend-ops runs every op on
// every backend): the same case, written once against kernels::Backend, runs on each backend
// this build compiles in, so a second backend is tested by the existing cases the day it is
// listed in compiled_backends().
//
//   BACKEND_TEST_CASE("gelu forward and backward match the reference", "[kernels]") {
//     auto x = upload(backend, host_vector);  // `backend` is the kernels::Backend under test
//     ...
//   }
//
// registers one Catch2 test case per backend that can run here, named "<name> on <device>"
// and tagged [<device>] (so ctest reports each backend separately and `[cuda]` selects one).
// Cases of a GPU backend (every device but cpu) are also tagged [gpu]: tests/CMakeLists.txt
// gives those the ctest label `gpu`, so `ctest -L gpu` runs exactly them.
// CROSS_BACKEND_TEST_CASE(name, tags) registers one per runnable backend other than cpu, with
// `cpu` and `backend` bound: with the cpu backend alone it registers nothing.
//
// Skipping: Catch2 2.13 has no SKIP. A backend that is compiled in but cannot run here
// (make_backend throws for it, e.g. the cuda backend on a machine without a GPU) gets none of
// its cases registered, so no pass is ever reported for it. Instead one case, "kernel tests
// skip the <device> backend that cannot run here", WARNs "SKIPPED: ..." with make_backend's
// reason; ctest reports that case as skipped (SKIP_REGULAR_EXPRESSION in tests/CMakeLists.txt).
// The cases are registered when the binary starts, so ctest runs the backends that could run
// where the tests were discovered (at build time).
#pragma once

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdio>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "kernels/backend.h"

namespace conveyor::kernels_test {

// The devices whose backends this build compiles in, cpu (the reference) first.
inline std::vector<std::string> compiled_backends() {
  std::vector<std::string> devices = {"cpu"};
#ifdef CONVEYOR_WITH_CUDA
  // make_backend for cuda throws when no GPU is present; the cuda cases are then skipped as
  // described at the top of this file.
  devices.push_back("cuda");
#endif
  return devices;
}

namespace detail {

// The Catch2 tags of a case on `device`.
inline std::string device_tags(const std::string& tags, const std::string& device) {
  return tags + "[" + device + "]" + (device == "cpu" ? "" : "[gpu]");
}

// Runs a BACKEND_TEST_CASE body on one backend.
class BackendCase final : public Catch::ITestInvoker {
 public:
  using Body = void (*)(kernels::Backend&);
  BackendCase(Body body, kernels::Backend* backend) : body_(body), backend_(backend) {}
  void invoke() const override { body_(*backend_); }

 private:
  Body body_;
  kernels::Backend* backend_;
};

// Runs a CROSS_BACKEND_TEST_CASE body on the cpu backend and one other.
class CrossBackendCase final : public Catch::ITestInvoker {
 public:
  using Body = void (*)(kernels::Backend& cpu, kernels::Backend& backend);
  CrossBackendCase(Body body, kernels::Backend* cpu, kernels::Backend* backend)
      : body_(body), cpu_(cpu), backend_(backend) {}
  void invoke() const override { body_(*cpu_, *backend_); }

 private:
  Body body_;
  kernels::Backend* cpu_;
  kernels::Backend* backend_;
};

// The case registered for a compiled-in backend that cannot run here.
class SkipNotice final : public Catch::ITestInvoker {
 public:
  explicit SkipNotice(std::string message) : message_(std::move(message)) {}
  void invoke() const override { WARN(message_); }

 private:
  std::string message_;
};

inline void register_case(Catch::ITestInvoker* invoker, const std::string& name,
                          const std::string& tags, const char* file, size_t line) {
  const Catch::AutoReg registered(
      invoker, Catch::SourceLineInfo(file, line), Catch::StringRef(),
      Catch::NameAndTags(Catch::StringRef(name), Catch::StringRef(tags)));
}

// One backend per runnable device, made once per process (when the first case registers) and
// kept until exit, so it outlives every buffer a case allocates.
struct Backends {
  std::vector<std::pair<std::string, std::unique_ptr<kernels::Backend>>> runnable;
};

inline Backends& backends() {
  static Backends all = [] {
    Backends b;
    for (const std::string& device : compiled_backends()) {
      kernels::BackendOptions options;
      options.device = kernels::parse_device_kind(device);
      try {
        b.runnable.emplace_back(device, kernels::make_backend(options));
      } catch (const std::exception& e) {
        const std::string message =
            "SKIPPED: kernel tests on the " + device +
            " backend, which is compiled in but cannot run here: " + e.what();
        register_case(new SkipNotice(message),
                      "kernel tests skip the " + device + " backend that cannot run here",
                      device_tags("[kernels]", device), __FILE__, __LINE__);
      }
    }
    return b;
  }();
  return all;
}

struct BackendCaseRegistrar {
  BackendCaseRegistrar(BackendCase::Body body, const char* name, const char* tags, const char* file,
                       size_t line) {
    for (auto& [device, backend] : backends().runnable) {
      register_case(new BackendCase(body, backend.get()), std::string(name) + " on " + device,
                    device_tags(tags, device), file, line);
    }
  }
};

struct CrossBackendCaseRegistrar {
  CrossBackendCaseRegistrar(CrossBackendCase::Body body, const char* name, const char* tags,
                            const char* file, size_t line) {
    kernels::Backend* cpu = nullptr;
    for (auto& [device, backend] : backends().runnable)
      if (device == "cpu") cpu = backend.get();
    if (!cpu) return;
    for (auto& [device, backend] : backends().runnable) {
      if (device == "cpu") continue;
      register_case(new CrossBackendCase(body, cpu, backend.get()),
                    std::string(name) + " on " + device, device_tags(tags, device), file, line);
    }
  }
};

}  // namespace detail

// ---- Buffers from and to host data --------------------------------------------------------

// A buffer in the backend's memory holding a copy of host.
template <typename T>
kernels::Buffer<T> upload(kernels::Backend& backend, const std::vector<T>& host) {
  kernels::Buffer<T> buf = backend.alloc<T>(host.size());
  if (!host.empty()) backend.from_host(buf.data(), host.data(), buf.bytes());
  backend.synchronize();  // host may go away as soon as this returns
  return buf;
}

// The buffer's contents, once every op issued so far has finished.
template <typename T>
std::vector<T> download(kernels::Backend& backend, const kernels::Buffer<T>& buf) {
  std::vector<T> host(buf.size());
  if (!host.empty()) backend.to_host(host.data(), buf.data(), buf.bytes());
  backend.synchronize();
  return host;
}

// One assertion: got and want hold the same bytes; on failure the message names the first
// differing element and how many differ.
template <typename T>
void expect_same_bits(const std::vector<T>& got, const std::vector<T>& want,
                      const std::string& what) {
  REQUIRE(got.size() == want.size());
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(T)) != 0) {
      if (bad == 0) first = i;
      ++bad;
    }
  }
  std::ostringstream msg;
  msg << what << ": " << bad << " of " << got.size() << " elements differ in their bits";
  if (bad) msg << "; first at " << first << ": got " << got[first] << ", want " << want[first];
  INFO(msg.str());
  CHECK(bad == 0);
}

}  // namespace conveyor::kernels_test

#define CONVEYOR_KT_CAT2(a, b) a##b
#define CONVEYOR_KT_CAT(a, b) CONVEYOR_KT_CAT2(a, b)

#define CONVEYOR_KT_BACKEND_CASE(body, name, tags)                                     \
  static void body(::conveyor::kernels::Backend& backend);                             \
  static const ::conveyor::kernels_test::detail::BackendCaseRegistrar CONVEYOR_KT_CAT( \
      body, _registrar)(&body, name, tags, __FILE__, __LINE__);                        \
  static void body(::conveyor::kernels::Backend& backend)

#define CONVEYOR_KT_CROSS_BACKEND_CASE(body, name, tags)                                      \
  static void body(::conveyor::kernels::Backend& cpu, ::conveyor::kernels::Backend& backend); \
  static const ::conveyor::kernels_test::detail::CrossBackendCaseRegistrar CONVEYOR_KT_CAT(   \
      body, _registrar)(&body, name, tags, __FILE__, __LINE__);                               \
  static void body(::conveyor::kernels::Backend& cpu, ::conveyor::kernels::Backend& backend)

// A test case run once per runnable backend, `backend` bound to it (see the top of the file).
#define BACKEND_TEST_CASE(name, tags) \
  CONVEYOR_KT_BACKEND_CASE(CONVEYOR_KT_CAT(conveyor_kt_case_, __LINE__), name, tags)

// A test case run once per runnable backend other than cpu, with `cpu` and `backend` bound.
#define CROSS_BACKEND_TEST_CASE(name, tags) \
  CONVEYOR_KT_CROSS_BACKEND_CASE(CONVEYOR_KT_CAT(conveyor_kt_cross_case_, __LINE__), name, tags)
