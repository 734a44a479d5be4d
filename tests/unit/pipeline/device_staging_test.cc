// Device tensors over a transport that only reaches host memory (transport/staging_transport.h),
// tested on the CPU with FakeDeviceBackend: CPU kernels behind memory the host cannot touch
// outside the backend's calls (a stray host access is a segmentation fault), and the
// in-process FakeTransport, which reads and writes the pointers it is given.
// What users rely on: staged messages arrive byte for byte in registered and unregistered
// device memory; host buffers pass through untouched; a pipeline step on device buffers
// (every schedule, two and three stages) and the ring all-reduce of data parallelism give the
// same bits as on host buffers.
#include <catch2/catch.hpp>

#include <cstring>
#include <exception>
#include <memory>
#include <numeric>
#include <thread>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/cpu_backend.h"
#include "model/param_table.h"
#include "model/partition.h"
#include "model/stage_model.h"
#include "pipeline/parallel/gradient_buckets.h"
#include "pipeline/parallel/gradient_sync.h"
#include "pipeline/parallel/ring_all_reduce.h"
#include "pipeline/runtime/device_transport.h"
#include "pipeline/runtime/executor.h"
#include "pipeline/runtime/message_tag.h"
#include "pipeline/schedule/schedule.h"
#include "pipeline/schedule/topology.h"
#include "tests/fakes/fake_device_backend.h"
#include "tests/fakes/fake_transport.h"
#include "tests/unit/pipeline/device_pipeline.h"
#include "transport/staging_transport.h"

using namespace conveyor;
using namespace conveyor::pipeline;
using conveyor::test::FakeDeviceBackend;
using conveyor::test::FakeFabric;
using conveyor::test::FakeTransport;
using conveyor::test::PipelineRun;
using conveyor::test::run_pipeline;
using conveyor::test::same_bits;
using conveyor::test::staged;
using conveyor::test::to_host;

namespace {

constexpr auto kDevice = transport::MemoryType::kDevice;
constexpr auto kHost = transport::MemoryType::kHost;

}  // namespace

TEST_CASE("staged messages arrive byte for byte in device memory, host ones untouched",
          "[pipeline]") {
  FakeFabric fabric(2);
  FakeDeviceBackend dev0, dev1;
  auto t0 = staged(fabric, 0, dev0);
  auto t1 = staged(fabric, 1, dev1);
  constexpr size_t n = 3000;
  std::vector<float> pattern(n);
  std::iota(pattern.begin(), pattern.end(), 0.5f);

  auto src = dev0.alloc<float>(n);
  dev0.from_host(src.data(), pattern.data(), n * sizeof(float));
  auto region_dst = dev1.alloc<float>(n), plain_dst = dev1.alloc<float>(n);
  const auto region0 = t0->register_memory(src.data(), src.bytes(), kDevice);
  const auto region1 = t1->register_memory(region_dst.data(), region_dst.bytes(), kDevice);
  CHECK(region0.memory_type() == kDevice);
  const auto deadline = Deadline::after_seconds(30);

  // Registered on both sides, at an offset inside the region (the mirror's same offset).
  auto r = t1->irecv(0, 1, region_dst.data() + 100, 500 * sizeof(float), &region1, kDevice);
  auto s = t0->isend(1, 1, src.data() + 7, 500 * sizeof(float), &region0, kDevice);
  t0->wait(s, deadline);
  t1->wait(r, deadline);
  // Unregistered on the receiver: a pooled bounce buffer; the region found by address on
  // the sender (no region passed).
  auto r2 = t1->irecv(0, 2, plain_dst.data(), n * sizeof(float), nullptr, kDevice);
  auto s2 = t0->isend(1, 2, src.data(), n * sizeof(float), nullptr, kDevice);
  std::vector<transport::Request> both{s2};
  t0->wait_all(both, deadline);
  while (!t1->test(r2)) {
  }
  const auto got = to_host(dev1, region_dst.data() + 100, 500);
  CHECK(same_bits(got, std::vector<float>(pattern.begin() + 7, pattern.begin() + 507)));
  CHECK(same_bits(to_host(dev1, plain_dst.data(), n), pattern));
  CHECK(to_host(dev1, region_dst.data(), 100) == std::vector<float>(100, 0.0f));

  // Host memory passes through: no staging counted.
  const auto before = t0->stats();
  std::vector<float> host_out(pattern), host_in(n);
  auto r3 = t1->irecv(0, 3, host_in.data(), n * sizeof(float), nullptr, kHost);
  auto s3 = t0->isend(1, 3, host_out.data(), n * sizeof(float), nullptr, kHost);
  t0->wait(s3, deadline);
  t1->wait(r3, deadline);
  CHECK(same_bits(host_in, pattern));
  CHECK(t0->stats().staged_sends == before.staged_sends);
  CHECK(t1->stats().staged_receives == 2);
  CHECK(t0->stats().staged_sends == 2);
  CHECK(t0->stats().mirrors == 1);

  // A cancelled staged receive leaves its buffer as it was.
  auto r4 = t1->irecv(0, 4, plain_dst.data(), n * sizeof(float), nullptr, kDevice);
  t1->cancel(r4);
  CHECK(same_bits(to_host(dev1, plain_dst.data(), n), pattern));
  CHECK(fabric.violations().empty());
}

TEST_CASE("the transport is told each buffer's memory and holds callers to it", "[pipeline]") {
  // The staging transport stages what its caller gives as device memory, and hands the
  // transport behind it host memory only (FakeTransport reaches nothing else: it records a
  // violation for device memory); a region must be of the memory its message says.
  FakeFabric fabric(2);
  FakeDeviceBackend dev0, dev1;
  auto t0 = staged(fabric, 0, dev0);
  auto t1 = staged(fabric, 1, dev1);
  auto src = dev0.alloc<float>(64), dst = dev1.alloc<float>(64);
  const auto region = t0->register_memory(src.data(), src.bytes(), kDevice);
  std::vector<float> host(64);
  const auto host_region = t0->register_memory(host.data(), 64 * sizeof(float), kHost);
  CHECK(host_region.memory_type() == kHost);
  CHECK_THROWS_WITH(t0->isend(1, 1, src.data(), src.bytes(), &region, kHost),
                    Catch::Contains("registered as device memory"));
  CHECK_THROWS_WITH(t0->isend(1, 1, host.data(), 64 * sizeof(float), &host_region, kDevice),
                    Catch::Contains("registered as host memory"));
  // A zero-byte device message has nothing to stage and reaches the inner transport as host.
  auto r = t1->irecv(0, 2, dst.data(), 0, nullptr, kDevice);
  auto s = t0->isend(1, 2, src.data(), 0, nullptr, kDevice);
  t0->wait(s, Deadline::after_seconds(30));
  t1->wait(r, Deadline::after_seconds(30));
  CHECK(t0->stats().staged_sends == 0);
  CHECK(fabric.violations().empty());
  // Device memory given to a host-only transport is refused, not read.
  FakeTransport inner(fabric, 0);
  CHECK_THROWS_WITH(inner.register_memory(src.data(), src.bytes(), kDevice),
                    Catch::Contains("device memory"));
}

TEST_CASE("overlapping staged registrations are refused", "[pipeline]") {
  FakeFabric fabric(1);
  FakeDeviceBackend dev;
  auto t = staged(fabric, 0, dev);
  auto buf = dev.alloc<float>(1024);
  const auto a = t->register_memory(buf.data(), 512 * sizeof(float), kDevice);
  CHECK_THROWS_WITH(t->register_memory(buf.data() + 100, 100 * sizeof(float), kDevice),
                    Catch::Contains("overlaps a registered region"));
  const auto b = t->register_memory(buf.data() + 512, 512 * sizeof(float), kDevice);  // adjacent
  CHECK(b.valid());
}

TEST_CASE("a pipeline step on device buffers gives the host path's bits", "[pipeline]") {
  struct Case {
    ScheduleKind kind;
    int p, m, v;
  };
  for (const Case& c :
       {Case{ScheduleKind::kOneFOneB, 2, 4, 1}, Case{ScheduleKind::kGPipe, 3, 3, 1},
        Case{ScheduleKind::kZeroBubbleH1, 2, 1, 1}, Case{ScheduleKind::kInterleaved, 2, 4, 2}}) {
    const Schedule s = make_schedule(c.kind, c.p, c.m, c.v);
    INFO(to_string(c.kind) << " p " << c.p << " m " << c.m << " v " << c.v);
    const auto host = run_pipeline({s, false});
    const auto device = run_pipeline({s, true});
    for (int r = 0; r < c.p; ++r) {
      INFO("rank " << r << ": host " << host[r].error << " device " << device[r].error);
      REQUIRE(host[r].error.empty());
      REQUIRE(device[r].error.empty());
      CHECK(same_bits(device[r].grads, host[r].grads));
      CHECK(same_bits(device[r].head_wte_grad, host[r].head_wte_grad));
      REQUIRE(device[r].losses.size() == host[r].losses.size());
      for (size_t step = 0; step < host[r].losses.size(); ++step)
        CHECK(same_bits(device[r].losses[step], host[r].losses[step]));
    }
  }
}

TEST_CASE("data-parallel gradient sums on device buffers give the host path's bits", "[pipeline]") {
  struct Case {
    int stages, replicas;
    bool zero1;
  };
  for (const Case& c : {Case{1, 2, false}, Case{2, 2, false}, Case{1, 3, true}}) {
    const Schedule s = make_schedule(ScheduleKind::kOneFOneB, c.stages, 2);
    INFO(c.stages << " stages x " << c.replicas << " replicas, zero " << c.zero1);
    const auto host = run_pipeline({s, false, c.replicas, c.zero1});
    const auto device = run_pipeline({s, true, c.replicas, c.zero1});
    for (size_t r = 0; r < host.size(); ++r) {
      INFO("rank " << r << ": host " << host[r].error << " device " << device[r].error);
      REQUIRE(host[r].error.empty());
      REQUIRE(device[r].error.empty());
      CHECK(same_bits(device[r].grads, host[r].grads));
      CHECK(same_bits(device[r].head_wte_grad, host[r].head_wte_grad));
      CHECK(same_bits(device[r].params, host[r].params));
    }
  }
}

TEST_CASE("the ring all-reduce on device buffers gives the host ring's bits", "[pipeline]") {
  for (int members : {2, 3, 4}) {
    for (size_t n : {size_t(1), size_t(10), size_t(1001)}) {
      INFO(members << " members, " << n << " elements");
      std::vector<int> group(members);
      std::iota(group.begin(), group.end(), 0);
      auto values = [&](int g) {
        std::vector<float> v(n);
        for (size_t i = 0; i < n; ++i) v[i] = 1.0f / float(3 + g * 7 + i % 11) + float(g) * 1e-3f;
        return v;
      };
      std::vector<std::vector<float>> host(members), device(members);
      std::vector<std::string> errors(2 * members);
      FakeFabric host_fabric(members), device_fabric(members);
      std::vector<std::thread> threads;
      for (int g = 0; g < members; ++g) {
        threads.emplace_back([&, g] {
          try {
            FakeTransport t(host_fabric, g);
            host[g] = values(g);
            std::vector<float> scratch;
            ring_all_reduce_sum(t, group, host[g], 3, scratch, Deadline::after_seconds(30));
          } catch (const std::exception& e) {
            errors[g] = e.what();
          }
        });
        threads.emplace_back([&, g] {
          try {
            FakeDeviceBackend dev;
            auto t = staged(device_fabric, g, dev);
            auto data = dev.alloc<float>(n);
            auto scratch = dev.alloc<float>((n + members - 1) / members);
            const auto v = values(g);
            dev.from_host(data.data(), v.data(), n * sizeof(float));
            const auto data_region = t->register_memory(data.data(), data.bytes(), kDevice);
            ring_all_reduce_sum(*t, group, {data.data(), n}, 3, dev,
                                {scratch.data(), scratch.size()}, Deadline::after_seconds(30),
                                {&data_region, nullptr});
            device[g] = to_host(dev, data.data(), n);
          } catch (const std::exception& e) {
            errors[members + g] = e.what();
          }
        });
      }
      for (auto& th : threads) th.join();
      for (const auto& e : errors) CHECK(e.empty());
      for (int g = 0; g < members; ++g) CHECK(same_bits(device[g], host[g]));
    }
  }
}
