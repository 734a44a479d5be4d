// The executor against an in-process fake transport (fake_transport.h): the ranks of a
// pipeline are threads of this process. What users rely on: each stage runs exactly its
// program, the results equal the one-stage run bit for bit, a buffer is never overwritten
// while a send may still read it, and a dead or silent peer ends the step with the right
// error instead of a hang.
#include <catch2/catch.hpp>

#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "common/error.h"
#include "kernels/cpu/cpu_backend.h"
#include "model/param_table.h"
#include "model/partition.h"
#include "model/stage_model.h"
#include "pipeline/runtime/executor.h"
#include "pipeline/runtime/message_tag.h"
#include "pipeline/schedule/schedule.h"
#include "pipeline/schedule/schedule_validator.h"
#include "pipeline/schedule/topology.h"
#include "tests/fakes/fake_transport.h"

using namespace conveyor;
using namespace conveyor::pipeline;
using conveyor::test::FakeFabric;
using conveyor::test::FakeTransport;

namespace {

constexpr int kMicroBatchSize = 2;

model::ModelConfig tiny_model() {
  model::ModelConfig c;
  c.layers = 8;
  c.heads = 2;
  c.dim = 16;
  c.seq = 8;
  c.vocab = 32;
  return c;
}

// Every rank fills micro-batch mb identically, from (mb, row) alone.
void load_batch(int mb, int32_t* tokens, int32_t* targets) {
  const auto c = tiny_model();
  for (int i = 0; i < kMicroBatchSize * c.seq; ++i) {
    tokens[i] = (mb * 7 + i * 3) % c.vocab;
    targets[i] = (mb * 5 + i * 11 + 1) % c.vocab;
  }
}

// One rank: its model (chunk c of stage s is virtual stage c * p + s) and what it ran.
struct Rank {
  std::unique_ptr<model::StageModel> model;
  std::vector<Action> ran;
  std::vector<StepResult> steps;
  std::exception_ptr error;
};

std::unique_ptr<model::StageModel> make_stage(kernels::Backend& k, const Topology& topo,
                                              int stage) {
  const auto cfg = tiny_model();
  const auto all =
      model::chunk_specs(model::default_partition(cfg.layers, topo.num_virtual_stages()));
  std::vector<model::ChunkSpec> mine;
  for (int c = 0; c < topo.virtual_stages; ++c) mine.push_back(all[topo.virtual_stage(stage, c)]);
  auto m = std::make_unique<model::StageModel>(k, cfg, mine, kMicroBatchSize);
  m->store().initialize(42);
  m->zero_grads();
  return m;
}

// Runs `steps` steps of `schedule` on every rank, each in its own thread; never throws
// (errors are kept per rank and asserted by the caller).
std::vector<Rank> run_pipeline(const Schedule& schedule, FakeFabric* fabric, int steps,
                               double wait_seconds = 30, int ranks_to_run = -1) {
  static kernels::CpuBackend cpu(1);
  const Topology topo = schedule.layout();
  const int p = topo.world_size();
  if (ranks_to_run < 0) ranks_to_run = p;
  std::vector<Rank> ranks(p);
  std::vector<std::unique_ptr<FakeTransport>> transports;
  for (int r = 0; r < p; ++r) {
    transports.push_back(std::make_unique<FakeTransport>(*fabric, r));
    transports.back()->set_tag_describer(describe_message);
  }
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks_to_run; ++r) {
    threads.emplace_back([&, r] {
      Rank& me = ranks[r];
      try {
        me.model = make_stage(cpu, topo, topo.place(r).stage);
        ExecutorOptions options;
        options.wait_timeout_s = wait_seconds;
        options.after_compute = [&me](const Action& a) { me.ran.push_back(a); };
        Executor executor(*me.model, schedule, topo, r, p > 1 ? transports[r].get() : nullptr,
                          options);
        for (int s = 0; s < steps; ++s) me.steps.push_back(executor.run_step(s, load_batch, 0.01f));
      } catch (...) {
        me.error = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  return ranks;
}

std::string error_text(const std::exception_ptr& e, ErrorKind* kind = nullptr) {
  if (!e) return "";
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    if (kind) *kind = err.kind();
    return err.what();
  } catch (const std::exception& err) {
    return err.what();
  }
}

bool same_bits(const float* a, const float* b, size_t n) {
  return std::memcmp(a, b, n * sizeof(float)) == 0;
}

struct Case {
  ScheduleKind kind;
  int p, m, v;
};

std::vector<Case> every_schedule() {
  std::vector<Case> out;
  for (int p : {2, 3, 4}) {
    for (auto k : {ScheduleKind::kGPipe, ScheduleKind::kOneFOneB, ScheduleKind::kZeroBubbleH1}) {
      out.push_back({k, p, 4, 1});
      out.push_back({k, p, 1, 1});  // one micro-batch: B's receive is posted before F's wait
    }
    out.push_back({ScheduleKind::kInterleaved, p, 2 * p, 2});
  }
  return out;
}

}  // namespace

TEST_CASE("each stage runs exactly the compute steps of its program, in order", "[executor]") {
  for (const Case& c : every_schedule()) {
    const Schedule s = make_schedule(c.kind, c.p, c.m, c.v);
    INFO(to_string(c.kind) << " p " << c.p << " m " << c.m << " v " << c.v);
    FakeFabric fabric(c.p);
    auto ranks = run_pipeline(s, &fabric, 1);
    for (int r = 0; r < c.p; ++r) {
      INFO("rank " << r << ": " << error_text(ranks[r].error));
      REQUIRE(!ranks[r].error);
      std::vector<Action> expected;
      for (const StageStep& st : stage_program(s, r))
        if (st.is_compute) expected.push_back(st.action);
      CHECK(ranks[r].ran == expected);
    }
  }
}

TEST_CASE("losses and weight gradients equal the one-stage run bit for bit", "[executor]") {
  // One-stage references, one per micro-batch count.
  std::map<int, std::vector<Rank>> reference;
  auto one_stage = [&](int m) -> Rank& {
    if (!reference.contains(m)) {
      FakeFabric solo(1);
      reference[m] = run_pipeline(make_schedule(ScheduleKind::kOneFOneB, 1, m), &solo, 1);
      REQUIRE(!reference[m][0].error);
    }
    return reference[m][0];
  };

  for (const Case& c : every_schedule()) {
    const Schedule s = make_schedule(c.kind, c.p, c.m, c.v);
    INFO(to_string(c.kind) << " p " << c.p << " m " << c.m << " v " << c.v);
    Rank& one = one_stage(c.m);
    model::StageModel& whole = *one.model;
    const auto& ref_losses = one.steps[0].losses;
    FakeFabric fabric(c.p);
    auto ranks = run_pipeline(s, &fabric, 1);
    for (int r = 0; r < c.p; ++r) {
      INFO("rank " << r << ": " << error_text(ranks[r].error));
      REQUIRE(!ranks[r].error);
      model::StageModel& m = *ranks[r].model;
      auto& store = m.store();
      for (size_t i = 0; i < store.specs().size(); ++i) {
        const std::string& name = store.specs()[i].name;
        if (name == model::kWteWeight && !m.holds_embedding()) continue;  // the head's copy
        INFO(name);
        auto g = store.grad(static_cast<int>(i));
        auto want = whole.store().grad(whole.store().index(name));
        CHECK(same_bits(g.data(), want.data(), g.size()));
      }
      if (m.holds_head()) {
        CHECK(same_bits(m.head_wte_grad().data(), whole.head_wte_grad().data(),
                        m.head_wte_grad().size()));
        const auto& losses = ranks[r].steps[0].losses;
        REQUIRE(losses.size() == ref_losses.size());
        CHECK(same_bits(losses.data(), ref_losses.data(), losses.size()));
      }
    }
    CHECK(fabric.violations().empty());
  }
}

TEST_CASE("a slot is reused only after its sends completed, and the pool stays in bounds",
          "[executor]") {
  for (auto kind : {ScheduleKind::kOneFOneB, ScheduleKind::kZeroBubbleH1, ScheduleKind::kGPipe}) {
    const Schedule s = make_schedule(kind, 4, 8);
    INFO(to_string(kind));
    FakeFabric fabric(4);
    fabric.set_hold_sends(true);  // a send completes only when its sender waits on it
    auto ranks = run_pipeline(s, &fabric, 3);
    const auto sim = validate_schedule(s);
    for (int r = 0; r < 4; ++r) {
      INFO("rank " << r << ": " << error_text(ranks[r].error));
      REQUIRE(!ranks[r].error);
      for (const StepResult& step : ranks[r].steps) {
        CHECK(step.peak_inflight == sim.peak_inflight[r]);
        CHECK(step.peak_slots <= s.max_inflight(r) + 1);
      }
    }
    const auto violations = fabric.violations();
    INFO((violations.empty() ? std::string() : violations.front()));
    CHECK(violations.empty());
  }
}

TEST_CASE("a peer dying mid-step fails every other stage with a peer failure naming it",
          "[executor]") {
  const Schedule s = make_schedule(ScheduleKind::kOneFOneB, 4, 8);
  FakeFabric fabric(4);
  fabric.die_after_sends(2, 3);  // rank 2 dies as it posts its fourth send
  auto ranks = run_pipeline(s, &fabric, 1, /*wait_seconds=*/20);
  for (int r : {0, 1, 3}) {
    ErrorKind kind = ErrorKind::kRuntime;
    const std::string text = error_text(ranks[r].error, &kind);
    INFO("rank " << r << ": " << text);
    REQUIRE(ranks[r].error);
    CHECK(kind == ErrorKind::kPeerFailed);
    CHECK(text.find("rank 2") != std::string::npos);
  }
}

TEST_CASE("a peer that never sends ends the step at the wait deadline, not in a hang",
          "[executor]") {
  const Schedule s = make_schedule(ScheduleKind::kOneFOneB, 2, 2);
  FakeFabric fabric(2);
  // Only rank 0 runs: its activations go out, the gradients it waits for never come.
  auto ranks = run_pipeline(s, &fabric, 1, /*wait_seconds=*/0.2, /*ranks_to_run=*/1);
  ErrorKind kind = ErrorKind::kPeerFailed;
  const std::string text = error_text(ranks[0].error, &kind);
  INFO(text);
  REQUIRE(ranks[0].error);
  CHECK(kind == ErrorKind::kRuntime);
  CHECK(text.find("deadline") != std::string::npos);
  CHECK(text.find("gradient of micro-batch 0") != std::string::npos);
}
