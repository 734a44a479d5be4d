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
#include "transport/staging_transport.h"

using namespace conveyor;
using namespace conveyor::pipeline;
using conveyor::test::FakeDeviceBackend;
using conveyor::test::FakeFabric;
using conveyor::test::FakeTransport;

namespace {

// A rank's transport for device tensors: FakeTransport (host memory only) behind staging
// through `device`.
std::unique_ptr<transport::StagingTransport> staged(FakeFabric& fabric, int rank,
                                                    FakeDeviceBackend& device) {
  return std::make_unique<transport::StagingTransport>(
      std::make_unique<FakeTransport>(fabric, rank), staging_options(device));
}

constexpr auto kDevice = transport::MemoryType::kDevice;
constexpr auto kHost = transport::MemoryType::kHost;

std::string error_text(const std::exception_ptr& e) {
  if (!e) return "";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& err) {
    return err.what();
  }
}

std::vector<float> to_host(kernels::Backend& k, const float* p, size_t n) {
  std::vector<float> out(n);
  k.to_host(out.data(), p, n * sizeof(float));
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

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

namespace {

model::ModelConfig tiny_model() {
  model::ModelConfig c;
  c.layers = 6;
  c.heads = 2;
  c.dim = 16;
  c.seq = 8;
  c.vocab = 32;
  return c;
}
constexpr int kMicroBatchSize = 2;

void load_batch(int mb, int32_t* tokens, int32_t* targets) {
  const auto c = tiny_model();
  for (int i = 0; i < kMicroBatchSize * c.seq; ++i) {
    tokens[i] = (mb * 7 + i * 3) % c.vocab;
    targets[i] = (mb * 5 + i * 11 + 1) % c.vocab;
  }
}

// What one rank computed in two steps, read back to the host.
struct RankResult {
  std::vector<std::vector<float>> losses;  // per step
  std::vector<float> grads, head_wte_grad, params;
  std::string error;
};

// Two steps of `schedule` on every rank, each rank a thread with its own backend: device
// (FakeDeviceBackend behind staging) or host (the CPU backend, FakeTransport as it is). With
// replicas > 1 the stages' gradients are summed over the replicas by GradientSync (buckets of
// 200 elements), with ZeRO-1 when `zero1` (its parameter all-gather runs too, over parameters
// no optimizer changed: their bits must survive the trip).
std::vector<RankResult> run_pipeline(const Schedule& schedule, bool device, int replicas = 1,
                                     bool zero1 = false) {
  const Topology topo = Topology::make(replicas, schedule.stages, schedule.virtual_stages);
  const int p = topo.world_size();
  FakeFabric fabric(p);
  std::vector<RankResult> out(p);
  std::vector<std::thread> threads;
  for (int r = 0; r < p; ++r) {
    threads.emplace_back([&, r] {
      RankResult& me = out[r];
      try {
        std::unique_ptr<kernels::Backend> backend;
        if (device) {
          backend = std::make_unique<FakeDeviceBackend>();
        } else {
          backend = std::make_unique<kernels::CpuBackend>(1);
        }
        std::unique_ptr<transport::Transport> t;
        if (device) {
          t = staged(fabric, r, static_cast<FakeDeviceBackend&>(*backend));
        } else {
          t = std::make_unique<FakeTransport>(fabric, r);
        }
        t->set_tag_describer(describe_message);
        const auto cfg = tiny_model();
        const auto all =
            model::chunk_specs(model::default_partition(cfg.layers, topo.num_virtual_stages()));
        std::vector<model::ChunkSpec> mine;
        const int stage = topo.place(r).stage;
        for (int c = 0; c < topo.virtual_stages; ++c)
          mine.push_back(all[topo.virtual_stage(stage, c)]);
        const auto params = model::stage_parameters(cfg, mine);
        std::vector<int> chunk_of;
        for (const auto& prm : params) chunk_of.push_back(model::chunk_of_parameter(prm, mine));
        BucketPlan plan = plan_buckets(params, chunk_of, gradient_completion_order(schedule, stage),
                                       200, replicas);
        const int replica = topo.place(r).replica;
        std::vector<bool> moments_kept;
        if (zero1) moments_kept = GradientSync::owned_parameters(plan, replica);
        model::StageModel m(*backend, cfg, mine, kMicroBatchSize, moments_kept);
        m.store().initialize(42);
        {
          GradientSyncOptions sync_options;
          sync_options.zero1 = zero1;
          sync_options.wait_timeout_s = 30;
          GradientSync sync(m, std::move(plan), topo.replica_group(stage), replica,
                            p > 1 ? t.get() : nullptr, sync_options);
          ExecutorOptions options;
          options.after_chunk_gradients = [&sync](int chunk, int first) {
            sync.gradients_done(chunk, first);
          };
          Executor executor(m, schedule, topo, r, topo.stages > 1 ? t.get() : nullptr, options);
          for (int step = 0; step < 2; ++step) {
            m.zero_grads();
            sync.begin_step(step);
            me.losses.push_back(executor.run_step(step, load_batch, 0.01f).losses);
            sync.finish_gradients();
            sync.gather_parameters();  // ZeRO-1: every replica's (unchanged) parameters
          }
        }
        auto prm = m.store().params();
        me.params = to_host(*backend, prm.data(), prm.size());
        auto g = m.store().grads();
        me.grads = to_host(*backend, g.data(), g.size());
        if (m.holds_head())
          me.head_wte_grad = to_host(*backend, m.head_wte_grad().data(), m.head_wte_grad().size());
        if (device) {
          const auto st = static_cast<transport::StagingTransport&>(*t).stats();
          // Every remote activation and gradient went through host memory.
          if (p > 1 && (st.staged_sends == 0 || st.staged_receives == 0))
            me.error = "nothing was staged";
          // The loader's tokens and targets reached the slots through from_host.
          if ((m.holds_embedding() || m.holds_head()) &&
              static_cast<FakeDeviceBackend&>(*backend).copies_from_host() == 0)
            me.error = "the batch never went through from_host";
        }
        t.reset();
        if (!fabric.violations().empty()) me.error = fabric.violations().front();
      } catch (...) {
        me.error = error_text(std::current_exception());
      }
    });
  }
  for (auto& th : threads) th.join();
  return out;
}

}  // namespace

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
    const auto host = run_pipeline(s, false);
    const auto device = run_pipeline(s, true);
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
    const auto host = run_pipeline(s, false, c.replicas, c.zero1);
    const auto device = run_pipeline(s, true, c.replicas, c.zero1);
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
