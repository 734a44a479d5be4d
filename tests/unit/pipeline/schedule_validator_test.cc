// The validator accepts every generated schedule, measures the bubbles theory predicts, and
// rejects hand-broken schedules with a message that names the fault and shows the grid.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "common/error.h"
#include "pipeline/schedule/schedule.h"
#include "pipeline/schedule/schedule_validator.h"

using conveyor::Error;
using conveyor::ErrorKind;
using namespace conveyor::pipeline;

namespace {

// The validator's message for a schedule it must reject (fails the test if it accepts).
std::string rejection(const Schedule& s) {
  try {
    validate_schedule(s);
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kRuntime);
    return e.message();
  }
  FAIL("validator accepted a broken schedule");
  return {};
}

void erase_action(Schedule& s, int stage, Action a) {
  auto& v = s.actions[stage];
  auto it = std::find(v.begin(), v.end(), a);
  REQUIRE(it != v.end());
  v.erase(it);
}

size_t index_of(const Schedule& s, int stage, Action a) {
  const auto& v = s.actions[stage];
  auto it = std::find(v.begin(), v.end(), a);
  REQUIRE(it != v.end());
  return static_cast<size_t>(it - v.begin());
}

}  // namespace

TEST_CASE("validator accepts every kind for p 1..8, m 1..32", "[validator]") {
  for (int p = 1; p <= 8; ++p) {
    for (int m = 1; m <= 32; ++m) {
      for (auto k : {ScheduleKind::kGPipe, ScheduleKind::kOneFOneB, ScheduleKind::kZeroBubbleH1}) {
        const Schedule s = make_schedule(k, p, m, 1);
        const SimulationResult r = validate_schedule(s);
        for (int st = 0; st < p; ++st) {
          CHECK(r.peak_inflight[st] <= s.max_inflight(st));
          if (k == ScheduleKind::kOneFOneB) CHECK(r.peak_inflight[st] == std::min(p - st, m));
          if (k == ScheduleKind::kGPipe) CHECK(r.peak_inflight[st] == m);
        }
      }
      if (m % p == 0) {
        for (int v : {2, 3}) {
          const Schedule s = make_schedule(ScheduleKind::kInterleaved, p, m, v);
          const SimulationResult r = validate_schedule(s);
          for (int st = 0; st < p; ++st) CHECK(r.peak_inflight[st] == s.max_inflight(st));
        }
      }
    }
  }
}

TEST_CASE("the validator's activation peaks are the bounds the schedules promise", "[validator]") {
  // Activations are held from F until W (W needs them), so ZB-H1 holds min(p, m) on every
  // stage: more than 1F1B's p - s on later stages, never more than 1F1B's stage-0 peak.
  for (int p = 1; p <= 8; ++p) {
    for (int m = 1; m <= 32; ++m) {
      for (auto k : {ScheduleKind::kGPipe, ScheduleKind::kOneFOneB, ScheduleKind::kZeroBubbleH1}) {
        const Schedule s = make_schedule(k, p, m);
        const auto r = validate_schedule(s);
        for (int st = 0; st < p; ++st) {
          INFO(to_string(k) << " p " << p << " m " << m << " stage " << st);
          CHECK(r.peak_inflight[st] == s.max_inflight(st));
        }
      }
      const auto zb = validate_schedule(make_schedule(ScheduleKind::kZeroBubbleH1, p, m));
      const auto f1b = validate_schedule(make_schedule(ScheduleKind::kOneFOneB, p, m));
      for (int st = 0; st < p; ++st) CHECK(zb.peak_inflight[st] <= f1b.peak_inflight[0]);
    }
  }
}

TEST_CASE("simulated bubbles match the formulas with unit costs", "[validator]") {
  const Costs unit{1, 1, 1};    // F = 1, B = 1, W = 1, BW = 2
  const Costs atomic{1, 2, 0};  // the textbook's backward: the gradient leaves at its end
  for (int p = 1; p <= 8; ++p) {
    for (int m = 1; m <= 32; ++m) {
      const double expected = double(p - 1) / double(m + p - 1);
      for (auto k : {ScheduleKind::kOneFOneB, ScheduleKind::kGPipe}) {
        INFO(to_string(k) << " p " << p << " m " << m);
        const auto r = validate_schedule(make_schedule(k, p, m), atomic);
        CHECK(r.bubble == Approx(expected).margin(1e-12));
        CHECK(r.makespan == Approx(3.0 * (m + p - 1)));
        CHECK(theoretical_bubble(k, p, m, 1, unit).value() == Approx(expected).margin(1e-12));
        // With W after the send, the cool-down is shorter than the textbook's: a stage
        // waits for B alone from the next, (p-1) units less in all.
        const auto split = validate_schedule(make_schedule(k, p, m), unit);
        CHECK(split.makespan == Approx(3.0 * (m + p - 1) - (p - 1)));
      }
      const auto f1b = validate_schedule(make_schedule(ScheduleKind::kOneFOneB, p, m), unit);
      const auto zb = validate_schedule(make_schedule(ScheduleKind::kZeroBubbleH1, p, m), unit);
      if (p > 1) {
        CHECK(zb.bubble < expected);  // the textbook 1F1B's
        CHECK(zb.bubble <= f1b.bubble);
        if (m > 1) CHECK(zb.bubble < f1b.bubble);
      } else {
        CHECK(zb.bubble == 0);
      }
      if (m >= p) {
        // The Zero Bubble paper's ZB-H1: the step takes 3m + p - 1 units.
        CHECK(zb.makespan == Approx(3.0 * m + p - 1));
        CHECK(zb.bubble ==
              Approx(theoretical_bubble(ScheduleKind::kZeroBubbleH1, p, m, 1, unit).value())
                  .margin(1e-12));
      }
      if (m % p == 0) {
        for (int v : {2, 3, 4}) {
          const auto r =
              validate_schedule(make_schedule(ScheduleKind::kInterleaved, p, m, v), atomic);
          CHECK(r.bubble == Approx(double(p - 1) / double(v * m + p - 1)).margin(1e-12));
          CHECK(r.bubble <= f1b.bubble);
        }
      }
    }
  }
}

// What a deeper warm-up may change and what it may not: the weight-gradient order (every
// result) and the zero-latency bubble stay; the activations held grow to the promised bound.
TEST_CASE("a deeper warm-up per hop keeps the gradient order and the bubble", "[validator]") {
  const Costs costs{2, 1.5, 1};
  auto weight_order = [](const Schedule& s, int st) {
    std::vector<Action> out;
    for (const Action& a : s.actions[st])
      if (a.op == Op::kBackward || a.op == Op::kBackwardWeight) out.push_back(a);
    return out;
  };
  for (auto k : {ScheduleKind::kOneFOneB, ScheduleKind::kZeroBubbleH1}) {
    for (int p = 1; p <= 8; ++p) {
      for (int m = 1; m <= 16; ++m) {
        const Schedule textbook = make_schedule(k, p, m);
        const auto base = validate_schedule(textbook, costs);
        for (int hop = 2; hop <= m; ++hop) {
          INFO(to_string(k) << " p " << p << " m " << m << " warm-up per hop " << hop);
          const Schedule s = make_schedule(k, p, m, 1, hop);
          const auto r = validate_schedule(s, costs);
          for (int st = 0; st < p; ++st) {
            CHECK(r.peak_inflight[st] == s.max_inflight(st));
            CHECK(s.max_inflight(st) >= textbook.max_inflight(st));
            CHECK(weight_order(s, st) == weight_order(textbook, st));
            // Stage s runs K*(p-1-s) warm-up forwards, then the first steady forward, before
            // its first backward.
            const auto first_b = std::find_if(s.actions[st].begin(), s.actions[st].end(),
                                              [](const Action& a) { return a.op != Op::kForward; });
            CHECK(first_b - s.actions[st].begin() == std::min(hop * (p - 1 - st) + 1, m));
          }
          if (k == ScheduleKind::kOneFOneB) CHECK(r.makespan == Approx(base.makespan));
        }
      }
    }
  }
}

TEST_CASE("1F1B's bubble does not depend on the F:B cost ratio (atomic backward)", "[validator]") {
  for (const Costs c : {Costs{1, 2, 0}, Costs{2, 1, 0}, Costs{1, 1, 0}}) {
    const auto r = validate_schedule(make_schedule(ScheduleKind::kOneFOneB, 4, 8), c);
    CHECK(r.bubble == Approx(3.0 / 11.0).margin(1e-12));
  }
}

TEST_CASE("simulation result is consistent", "[validator]") {
  const Schedule s = make_schedule(ScheduleKind::kZeroBubbleH1, 3, 5);
  const Costs c{1, 2, 3};
  const auto r = validate_schedule(s, c);
  double busy = 0;
  for (int st = 0; st < 3; ++st) {
    REQUIRE(r.times[st].size() == s.actions[st].size());
    double prev_end = 0;
    for (size_t i = 0; i < s.actions[st].size(); ++i) {
      CHECK(r.times[st][i].start >= prev_end);  // one action at a time per stage
      CHECK(r.times[st][i].end - r.times[st][i].start == c.of(s.actions[st][i].op));
      prev_end = r.times[st][i].end;
      CHECK(prev_end <= r.makespan);
    }
    CHECK(r.busy[st] == Approx(5 * (1 + 2 + 3)));
    busy += r.busy[st];
  }
  CHECK(r.bubble == Approx((r.makespan * 3 - busy) / (r.makespan * 3)));
}

TEST_CASE("validator rejects a backward before its forward", "[validator]") {
  Schedule s = make_schedule(ScheduleKind::kOneFOneB, 4, 8);
  // The last stage starts F0 BW0 ...: swap them.
  std::swap(s.actions[3][0], s.actions[3][1]);
  const std::string msg = rejection(s);
  CHECK_THAT(msg, Catch::Contains("broken dependency"));
  CHECK_THAT(msg, Catch::Contains("BW0 on stage 3"));
  CHECK_THAT(msg, Catch::Contains("[BW0]"));      // fault marked in the grid
  CHECK_THAT(msg, Catch::Contains("stage 0 |"));  // the grid has every stage
  CHECK_THAT(msg, Catch::Contains("stage 3 |"));
}

TEST_CASE("validator rejects W before its B", "[validator]") {
  Schedule s = make_schedule(ScheduleKind::kZeroBubbleH1, 2, 4);
  const size_t w = index_of(s, 0, {Op::kBackwardWeight, 0, 0});
  const size_t b = index_of(s, 0, {Op::kBackwardInput, 0, 0});
  std::swap(s.actions[0][w], s.actions[0][b]);
  const std::string msg = rejection(s);
  CHECK_THAT(msg, Catch::Contains("broken dependency: W0 on stage 0"));
  CHECK_THAT(msg, Catch::Contains("[W0]"));
}

TEST_CASE("validator rejects a missing action", "[validator]") {
  Schedule s = make_schedule(ScheduleKind::kOneFOneB, 4, 8);
  erase_action(s, 1, {Op::kBackward, 5, 0});
  const std::string msg = rejection(s);
  CHECK_THAT(msg, Catch::Contains("missing action: BW5 never runs on stage 1"));
  CHECK_THAT(msg, Catch::Contains("stage 1 |"));

  Schedule zb = make_schedule(ScheduleKind::kZeroBubbleH1, 3, 4);
  erase_action(zb, 2, {Op::kBackwardWeight, 3, 0});
  CHECK_THAT(rejection(zb), Catch::Contains("missing action: W3 never runs on stage 2"));
}

TEST_CASE("validator rejects a duplicated action", "[validator]") {
  Schedule s = make_schedule(ScheduleKind::kOneFOneB, 4, 8);
  s.actions[2].push_back({Op::kForward, 2, 0});
  const std::string msg = rejection(s);
  CHECK_THAT(msg, Catch::Contains("duplicate action: F2 runs twice on stage 2"));
  CHECK_THAT(msg, Catch::Contains("[F2]"));

  // A BW on top of a B/W pair is backward work done twice.
  Schedule zb = make_schedule(ScheduleKind::kZeroBubbleH1, 2, 2);
  zb.actions[1].push_back({Op::kBackward, 1, 0});
  CHECK_THAT(rejection(zb), Catch::Contains("duplicate action: BW1"));
}

TEST_CASE("validator rejects a deadlocking order", "[validator]") {
  // Each stage's order is fine on its own (dependencies, bounds and weight order hold);
  // together they wait on each other: stage 0 wants BW0 back before it sends F1, stage 1
  // wants F1 before it runs BW0.
  Schedule s = make_schedule(ScheduleKind::kGPipe, 2, 2);
  s.actions[0] = {
      {Op::kForward, 0, 0}, {Op::kBackward, 0, 0}, {Op::kForward, 1, 0}, {Op::kBackward, 1, 0}};
  s.actions[1] = {
      {Op::kForward, 0, 0}, {Op::kForward, 1, 0}, {Op::kBackward, 0, 0}, {Op::kBackward, 1, 0}};
  const std::string msg = rejection(s);
  CHECK_THAT(msg, Catch::Contains("deadlock"));
  CHECK_THAT(msg, Catch::Contains("stage 0 is stuck at step 1 (BW0): waits for BW0 of stage 1"));
  CHECK_THAT(msg, Catch::Contains("stage 1 is stuck at step 1 (F1): waits for F1 of stage 0"));
  CHECK_THAT(msg, Catch::Contains("[BW0]"));
  CHECK_THAT(msg, Catch::Contains("[F1]"));
}

TEST_CASE("validator rejects all stages starting with backward", "[validator]") {
  Schedule s = make_schedule(ScheduleKind::kGPipe, 3, 2);
  for (auto& stage : s.actions) std::rotate(stage.begin(), stage.begin() + 2, stage.end());
  CHECK_THAT(rejection(s), Catch::Contains("broken dependency: BW0 on stage 0 (step 0) runs "
                                           "before its F0"));
}

TEST_CASE("validator rejects more activations than promised", "[validator]") {
  Schedule s = make_schedule(ScheduleKind::kOneFOneB, 4, 8);
  // Give stage 1 GPipe's order: 8 activations where 1F1B promises 3.
  s.actions[1] = make_schedule(ScheduleKind::kGPipe, 4, 8).actions[1];
  const std::string msg = rejection(s);
  CHECK_THAT(msg, Catch::Contains("too many activations in flight"));
  CHECK_THAT(msg, Catch::Contains("[F3]"));
  CHECK_THAT(msg, Catch::Contains("promises at most 3"));
}

TEST_CASE("validator rejects weight gradients out of micro-batch order", "[validator]") {
  Schedule s = make_schedule(ScheduleKind::kOneFOneB, 4, 8);
  const size_t a = index_of(s, 0, {Op::kBackward, 6, 0});
  const size_t b = index_of(s, 0, {Op::kBackward, 7, 0});
  std::swap(s.actions[0][a], s.actions[0][b]);
  const std::string msg = rejection(s);
  CHECK_THAT(msg, Catch::Contains("weight gradients out of order"));
  CHECK_THAT(msg, Catch::Contains("[BW6]"));

  Schedule zb = make_schedule(ScheduleKind::kZeroBubbleH1, 4, 8);
  const size_t w5 = index_of(zb, 3, {Op::kBackwardWeight, 5, 0});
  const size_t w6 = index_of(zb, 3, {Op::kBackwardWeight, 6, 0});
  std::swap(zb.actions[3][w5], zb.actions[3][w6]);
  CHECK_THAT(rejection(zb), Catch::Contains("weight gradients out of order: W5 on stage 3"));
}

TEST_CASE("validator rejects out-of-range actions and bad costs", "[validator]") {
  Schedule s = make_schedule(ScheduleKind::kOneFOneB, 2, 2);
  s.actions[0][0].microbatch = 7;
  CHECK_THAT(rejection(s), Catch::Contains("invalid action"));
  try {
    validate_schedule(make_schedule(ScheduleKind::kOneFOneB, 2, 2), Costs{-1, 1, 1});
    FAIL("no throw");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kUsage);
  }
}
