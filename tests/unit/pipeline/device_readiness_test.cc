// What a first run on a GPU would hit, made observable on the CPU through FakeDeviceBackend's
// books (tests/fakes/fake_device_backend.h). What users rely on: staging device tensors pins
// host memory for the tensors that cross the wire, not for whole activation slots; a training
// step waits for the device a fixed handful of times per micro-batch, however many parameter
// tensors the model has; a transport that writes device memory itself never receives into
// memory that queued kernels may still use; every thread that works for a device rank binds
// to its device first; a bad target is stopped on the host, before the device sees it.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/cpu_backend.h"
#include "model/partition.h"
#include "model/stage_model.h"
#include "pipeline/runtime/executor.h"
#include "pipeline/runtime/slot_pool.h"
#include "pipeline/schedule/schedule.h"
#include "pipeline/schedule/topology.h"
#include "tests/fakes/fake_device_backend.h"
#include "tests/fakes/fake_transport.h"
#include "tests/test_util.h"
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

TEST_CASE("staging pins host memory for the wire tensors of a slot, not for the slot",
          "[pipeline]") {
  // GPT-2 small on two stages, micro-batches of 8 sequences of 1024 tokens. The fake backend's
  // memory is mapped, never touched here, so the model and the slots cost no real memory.
  const model::ModelConfig gpt2 = conveyor::test::gpt2_small();
  constexpr int kMicroBatch = 8;
  const size_t wire_tensor_bytes = size_t(kMicroBatch) * gpt2.seq * gpt2.dim * sizeof(float);
  const auto specs = model::chunk_specs(model::default_partition(gpt2.layers, 2));
  for (int stage = 0; stage < 2; ++stage) {
    INFO("stage " << stage);
    FakeDeviceBackend device;
    size_t pinned = 0, mirrors = 0;
    transport::StagingOptions options;
    options.to_host = [&](void* host, const void* p, size_t n) { device.to_host(host, p, n); };
    options.from_host = [&](void* p, const void* host, size_t n) { device.from_host(p, host, n); };
    options.alloc_host = [&](size_t n) {
      pinned += n;
      ++mirrors;
      return std::malloc(n);  // large: mapped, not touched
    };
    options.free_host = [](void* p) { std::free(p); };
    FakeFabric fabric(2);
    transport::StagingTransport staging(std::make_unique<FakeTransport>(fabric, stage), options);
    model::StageModel model(device, gpt2, {specs[size_t(stage)]}, kMicroBatch);
    SlotPool pool(model, &staging, 30);
    SlotState& slot = pool.acquire(0, 0);
    REQUIRE(mirrors == 1);
    // input, output, input gradient, output gradient: 4 x 25 MiB, where the slot is gigabytes.
    CHECK(pinned == 4 * wire_tensor_bytes);
    CHECK(slot.slot->activation_bytes() > 40 * pinned);
    // The wire tensors are the registered ones.
    const auto* begin = static_cast<const char*>(slot.region.data());
    for (const float* t : {slot.slot->input(), slot.slot->output(), slot.slot->input_grad(),
                           slot.slot->output_grad()}) {
      const auto* at = reinterpret_cast<const char*>(t);
      CHECK(at >= begin);
      CHECK(at + wire_tensor_bytes <= begin + slot.region.size());
    }
    pool.release(0, 0);
  }
}

TEST_CASE("a training step waits for the device a handful of times per micro-batch", "[pipeline]") {
  // The same pipeline with 2 and with 8 layers (so 4x the parameter tensors): the host waits
  // of a step (after the first, which allocates) do not grow with the tensors, because the
  // gradient norm is one reduction.
  constexpr int kMicroBatches = 4;
  const Schedule s = make_schedule(ScheduleKind::kOneFOneB, 2, kMicroBatches);
  std::vector<std::vector<size_t>> waits;  // [layers case][rank]
  for (int layers : {2, 8}) {
    PipelineRun run{s, true};
    run.config.layers = layers;
    const auto ranks = run_pipeline(run);
    waits.emplace_back();
    for (size_t r = 0; r < ranks.size(); ++r) {
      INFO(layers << " layers, rank " << r << ": " << ranks[r].error);
      REQUIRE(ranks[r].error.empty());
      waits.back().push_back(ranks[r].host_waits.back());
    }
  }
  for (size_t r = 0; r < waits[0].size(); ++r) {
    INFO("rank " << r << ": " << waits[0][r] << " waits with 2 layers, " << waits[1][r]
                 << " with 8");
    CHECK(waits[0][r] == waits[1][r]);
    CHECK(waits[1][r] <= 6 * kMicroBatches + 4);
  }
}

TEST_CASE("a device-direct transport never receives into memory queued kernels may use",
          "[pipeline]") {
  struct Case {
    ScheduleKind kind;
    int p, m, v;
  };
  for (const Case& c :
       {Case{ScheduleKind::kOneFOneB, 2, 4, 1}, Case{ScheduleKind::kGPipe, 3, 3, 1},
        Case{ScheduleKind::kZeroBubbleH1, 2, 1, 1}, Case{ScheduleKind::kZeroBubbleH1, 3, 6, 1},
        Case{ScheduleKind::kInterleaved, 2, 4, 2}}) {
    const Schedule s = make_schedule(c.kind, c.p, c.m, c.v);
    INFO(to_string(c.kind) << " p " << c.p << " m " << c.m << " v " << c.v);
    // Steps back to back: the executor may not count on its caller waiting for the device.
    PipelineRun direct{s, true};
    direct.device_direct = true;
    direct.steps = 3;
    direct.norm = false;
    PipelineRun host{s, false};
    host.steps = 3;
    const auto on_device = run_pipeline(direct);
    const auto on_host = run_pipeline(host);
    for (size_t r = 0; r < on_device.size(); ++r) {
      INFO("rank " << r << ": " << on_device[r].error);
      REQUIRE(on_device[r].error.empty());
      REQUIRE(on_host[r].error.empty());
      CHECK(on_device[r].hazards == std::vector<std::string>{});
      CHECK(same_bits(on_device[r].grads, on_host[r].grads));
    }
  }
}

TEST_CASE("every thread that works for a device rank binds to its device first", "[pipeline]") {
  // Data parallelism: the gradient all-reduce runs on its own thread (--overlap on).
  for (int stages : {1, 2}) {
    PipelineRun run{make_schedule(ScheduleKind::kOneFOneB, stages, 2), true, 2};
    const auto ranks = run_pipeline(run);
    for (size_t r = 0; r < ranks.size(); ++r) {
      INFO(stages << " stages, rank " << r << ": " << ranks[r].error);
      REQUIRE(ranks[r].error.empty());
      INFO("first call from an unbound thread: " << ranks[r].first_unbound);
      CHECK(ranks[r].unbound_calls == 0);
    }
  }
}

TEST_CASE("a target outside the vocabulary is stopped on the host, naming its micro-batch",
          "[pipeline]") {
  const model::ModelConfig cfg = conveyor::test::tiny_device_test_model();
  const Schedule s = make_schedule(ScheduleKind::kOneFOneB, 1, 3);
  const Topology topo = Topology::make(1, 1, 1);
  for (bool device : {false, true}) {
    for (int32_t bad : {cfg.vocab, -1}) {
      INFO((device ? "fake device" : "cpu") << ", target " << bad);
      std::unique_ptr<kernels::Backend> backend;
      if (device) {
        backend = std::make_unique<FakeDeviceBackend>();
      } else {
        backend = std::make_unique<kernels::CpuBackend>(1);
      }
      model::StageModel m(*backend, cfg, model::chunk_specs({cfg.layers}),
                          conveyor::test::kDeviceTestMicroBatch);
      m.store().initialize(1);
      Executor executor(m, s, topo, 0, nullptr, {});
      const BatchLoader loader = [&](int mb, int32_t* tokens, int32_t* targets) {
        for (int i = 0; i < conveyor::test::kDeviceTestMicroBatch * cfg.seq; ++i) {
          tokens[i] = i % cfg.vocab;
          targets[i] = mb == 1 && i == 5 ? bad : (i + 1) % cfg.vocab;
        }
      };
      try {
        executor.run_step(0, loader, 0.01f);
        FAIL("target " << bad << " was accepted");
      } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::kRuntime);
        CHECK_THAT(e.what(), Catch::Contains(fmt::format(
                                 "micro-batch 1: target {} at position 5 is outside the "
                                 "vocabulary [0, {})",
                                 bad, cfg.vocab)));
      }
    }
  }
}
