// Schedule generators: names, invalid parameters, memory bounds, derived communication.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <tuple>
#include <utility>

#include "common/error.h"
#include "pipeline/schedule/schedule.h"

using conveyor::Error;
using conveyor::ErrorKind;
using namespace conveyor::pipeline;

namespace {

ErrorKind kind_of_failure(ScheduleKind k, int p, int m, int v) {
  try {
    make_schedule(k, p, m, v);
  } catch (const Error& e) {
    return e.kind();
  }
  FAIL("make_schedule(" << to_string(k) << ", " << p << ", " << m << ", " << v
                        << ") did not throw");
  return ErrorKind::kRuntime;
}

}  // namespace

TEST_CASE("schedule kinds parse from their names and round-trip", "[schedule]") {
  for (auto k : {ScheduleKind::kGPipe, ScheduleKind::kOneFOneB, ScheduleKind::kInterleaved,
                 ScheduleKind::kZeroBubbleH1}) {
    CHECK(parse_schedule_kind(to_string(k)) == k);
  }
  CHECK(parse_schedule_kind("1F1B") == ScheduleKind::kOneFOneB);
  try {
    parse_schedule_kind("pipedream");
    FAIL("no throw");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kUsage);
    // The message or hint lists every valid name.
    const std::string text = e.message() + " " + e.hint();
    for (const char* n : {"gpipe", "1f1b", "interleaved", "zb-h1"})
      CHECK_THAT(text, Catch::Contains(n));
  }
}

TEST_CASE("invalid schedule parameters are usage errors", "[schedule]") {
  CHECK(kind_of_failure(ScheduleKind::kOneFOneB, 0, 4, 1) == ErrorKind::kUsage);
  CHECK(kind_of_failure(ScheduleKind::kOneFOneB, 4, 0, 1) == ErrorKind::kUsage);
  CHECK(kind_of_failure(ScheduleKind::kOneFOneB, 4, 8, 2) == ErrorKind::kUsage);
  CHECK(kind_of_failure(ScheduleKind::kZeroBubbleH1, 4, 8, 0) == ErrorKind::kUsage);
  CHECK(kind_of_failure(ScheduleKind::kInterleaved, 4, 8, 1) == ErrorKind::kUsage);
  CHECK(kind_of_failure(ScheduleKind::kInterleaved, 4, 6, 2) == ErrorKind::kUsage);
  for (auto [k, hop] :
       {std::pair{ScheduleKind::kOneFOneB, 0}, std::pair{ScheduleKind::kOneFOneB, 9},
        std::pair{ScheduleKind::kGPipe, 2}, std::pair{ScheduleKind::kInterleaved, 2}}) {
    INFO(to_string(k) << " warm-up per hop " << hop);
    CHECK_THROWS_MATCHES(make_schedule(k, 4, 8, k == ScheduleKind::kInterleaved ? 2 : 1, hop),
                         Error, Catch::Predicate<Error>([](const Error& e) {
                           return e.kind() == ErrorKind::kUsage &&
                                  e.message().find("--warmup-per-hop") != std::string::npos;
                         }));
  }
  try {
    make_schedule(ScheduleKind::kInterleaved, 4, 6, 2);
  } catch (const Error& e) {
    // Says how to fix it: the next multiple of the stage count.
    CHECK_THAT(e.message(), Catch::Contains("--microbatches 8"));
  }
}

TEST_CASE("every (micro-batch, chunk) gets one forward and one backward per stage", "[schedule]") {
  for (int p : {1, 3, 4}) {
    for (int m : {1, 4, 8}) {
      for (auto k : {ScheduleKind::kGPipe, ScheduleKind::kOneFOneB, ScheduleKind::kInterleaved,
                     ScheduleKind::kZeroBubbleH1}) {
        const int v = k == ScheduleKind::kInterleaved ? 2 : 1;
        if (k == ScheduleKind::kInterleaved && m % p != 0) continue;
        const Schedule s = make_schedule(k, p, m, v);
        REQUIRE(static_cast<int>(s.actions.size()) == p);
        for (int st = 0; st < p; ++st) {
          std::map<std::tuple<Op, int, int>, int> count;
          for (const Action& a : s.actions[st]) ++count[{a.op, a.microbatch, a.chunk}];
          const bool split = k == ScheduleKind::kZeroBubbleH1;
          CHECK(s.actions[st].size() == static_cast<size_t>((split ? 3 : 2) * m * v));
          for (int c = 0; c < v; ++c) {
            for (int mb = 0; mb < m; ++mb) {
              CHECK(count[{Op::kForward, mb, c}] == 1);
              if (split) {
                CHECK(count[{Op::kBackwardInput, mb, c}] == 1);
                CHECK(count[{Op::kBackwardWeight, mb, c}] == 1);
              } else {
                CHECK(count[{Op::kBackward, mb, c}] == 1);
              }
            }
          }
        }
      }
    }
  }
}

TEST_CASE("promised in-flight bounds", "[schedule]") {
  for (int p = 1; p <= 8; ++p) {
    for (int m = 1; m <= 16; ++m) {
      const Schedule gpipe = make_schedule(ScheduleKind::kGPipe, p, m);
      const Schedule f1b = make_schedule(ScheduleKind::kOneFOneB, p, m);
      const Schedule zb = make_schedule(ScheduleKind::kZeroBubbleH1, p, m);
      for (int st = 0; st < p; ++st) {
        CHECK(gpipe.max_inflight(st) == m);
        CHECK(f1b.max_inflight(st) == std::min(p - st, m));
        CHECK(zb.max_inflight(st) == std::min(p, m));  // kept from F until W
        CHECK(peak_pending_weight(f1b, st) == 0);
        CHECK(peak_pending_weight(zb, st) == std::min(st + 1, m));
      }
    }
  }
}

TEST_CASE("zb-h1 keeps F-to-W live activations within 1F1B's stage-0 peak", "[schedule]") {
  for (int p = 1; p <= 8; ++p) {
    for (int m = 1; m <= 32; ++m) {
      const Schedule zb = make_schedule(ScheduleKind::kZeroBubbleH1, p, m);
      for (int st = 0; st < p; ++st) {
        int live = 0, peak = 0;  // F done, W not yet done
        for (const Action& a : zb.actions[st]) {
          if (a.op == Op::kForward) peak = std::max(peak, ++live);
          if (a.op == Op::kBackwardWeight) --live;
        }
        CHECK(peak <= std::min(p, m));
      }
    }
  }
}

TEST_CASE("interleaved places virtual stage chunk*p+stage round-robin", "[schedule]") {
  const Schedule s = make_schedule(ScheduleKind::kInterleaved, 4, 8, 2);
  CHECK(s.num_virtual_stages() == 8);
  CHECK(s.virtual_stage(3, 0) == 3);
  CHECK(s.virtual_stage(0, 1) == 4);
  CHECK(s.stage_of(5) == 1);
  CHECK(s.chunk_of(5) == 1);
  // Last stage, chunk 0 hands its activation to stage 0, chunk 1.
  const auto sends = comms_after(s, 3, Action{Op::kForward, 2, 0});
  REQUIRE(sends.size() == 1);
  CHECK(sends[0].kind == CommKind::kSendActivation);
  CHECK(sends[0].peer_stage == 0);
  CHECK(sends[0].peer_virtual_stage == 4);
  // Stage 0 chunk 1's backward sends its input gradient back to stage 3 chunk 0.
  const auto grads = comms_after(s, 0, Action{Op::kBackward, 2, 1});
  REQUIRE(grads.size() == 1);
  CHECK(grads[0].kind == CommKind::kSendGradient);
  CHECK(grads[0].peer_stage == 3);
  // The ends of the pipeline talk to nobody; W never communicates.
  CHECK(comms_before(s, 0, Action{Op::kForward, 0, 0}).empty());
  CHECK(comms_before(s, 3, Action{Op::kBackward, 0, 1}).empty());
  const Schedule zb = make_schedule(ScheduleKind::kZeroBubbleH1, 4, 8, 1);
  CHECK(comms_before(zb, 1, Action{Op::kBackwardWeight, 0, 0}).empty());
  CHECK(comms_after(zb, 1, Action{Op::kBackwardWeight, 0, 0}).empty());
}

TEST_CASE("every send has exactly one matching receive on the peer", "[schedule]") {
  for (auto [k, p, m, v] :
       {std::tuple{ScheduleKind::kOneFOneB, 4, 8, 1}, std::tuple{ScheduleKind::kGPipe, 3, 5, 1},
        std::tuple{ScheduleKind::kInterleaved, 4, 8, 2},
        std::tuple{ScheduleKind::kInterleaved, 2, 4, 3},
        std::tuple{ScheduleKind::kZeroBubbleH1, 4, 6, 1}}) {
    const Schedule s = make_schedule(k, p, m, v);
    // (from vs, to vs, mb, is_activation) -> sends minus receives
    std::map<std::tuple<int, int, int, bool>, int> balance;
    int sends = 0;
    for (int st = 0; st < p; ++st) {
      for (const StageStep& step : stage_program(s, st)) {
        if (step.is_compute) continue;
        const Comm& c = step.comm;
        CHECK(c.peer_stage == s.stage_of(c.peer_virtual_stage));
        switch (c.kind) {
          case CommKind::kSendActivation:
            ++sends;
            ++balance[{c.virtual_stage, c.peer_virtual_stage, c.microbatch, true}];
            break;
          case CommKind::kRecvActivation:
            --balance[{c.peer_virtual_stage, c.virtual_stage, c.microbatch, true}];
            break;
          case CommKind::kSendGradient:
            ++sends;
            ++balance[{c.virtual_stage, c.peer_virtual_stage, c.microbatch, false}];
            break;
          case CommKind::kRecvGradient:
            --balance[{c.peer_virtual_stage, c.virtual_stage, c.microbatch, false}];
            break;
        }
      }
    }
    // Each of the V-1 boundaries carries m activations forward and m gradients back.
    CHECK(sends == 2 * m * (s.num_virtual_stages() - 1));
    for (const auto& [key, n] : balance) CHECK(n == 0);
  }
}
