// Text grid and Chrome trace of a simulated schedule.
#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "pipeline/runtime/trace.h"
#include "pipeline/schedule/schedule_grid.h"
#include "tests/test_util.h"

using namespace conveyor::pipeline;

TEST_CASE("1F1B grid for 2 stages, 2 micro-batches", "[grid]") {
  const Schedule s = make_schedule(ScheduleKind::kOneFOneB, 2, 2);
  const std::string grid = render_grid(s, validate_schedule(s));
  // Stage 1 turns F0 into BW0 at once; stage 0 waits for each gradient, which leaves after
  // the B half of a BW (2 units: B, then W).
  CHECK(grid ==
        "time    | 0   1   2   3   4   5   6   7\n"
        "stage 0 | F0  F1  .   BW0 -   .   BW1 -\n"
        "stage 1 | .   F0  BW0 -   F1  BW1 -   .\n");
}

TEST_CASE("interleaved and zb-h1 labels", "[grid]") {
  const Schedule i = make_schedule(ScheduleKind::kInterleaved, 2, 2, 2);
  CHECK(action_label(i, {Op::kForward, 3, 1}) == "F3.1");
  const std::string grid = render_grid(i, validate_schedule(i));
  CHECK_THAT(grid, Catch::Contains("BW1.0"));
  const Schedule zb = make_schedule(ScheduleKind::kZeroBubbleH1, 2, 2);
  const std::string zgrid = render_grid(zb, validate_schedule(zb));
  CHECK_THAT(zgrid, Catch::Contains("B1"));
  CHECK_THAT(zgrid, Catch::Contains("W1"));
}

TEST_CASE("non-unit costs scale the grid's columns", "[grid]") {
  const Schedule s = make_schedule(ScheduleKind::kOneFOneB, 1, 1);
  // F = 0.5, BW = 1: column = 0.5 units; F fills one column, BW two.
  const std::string grid = render_grid(s, validate_schedule(s, Costs{0.5, 0.5, 0.5}));
  CHECK(grid == "time x0.5 | 0   1   2\nstage 0   | F0  BW0 -\n");
}

TEST_CASE("chrome trace of a simulation", "[grid][trace]") {
  conveyor::test::TempDir dir;
  const Schedule s = make_schedule(ScheduleKind::kZeroBubbleH1, 3, 4);
  const auto r = validate_schedule(s);
  const auto spans = simulation_spans(s, r, 1000.0);
  REQUIRE(spans.size() == 3 * 3 * 4);
  const std::string path = (dir / "trace.json").string();
  write_chrome_trace(path, spans);

  std::ifstream in(path);
  const auto doc = nlohmann::json::parse(in);
  int complete = 0, names = 0;
  for (const auto& e : doc.at("traceEvents")) {
    if (e.at("ph") == "M") {
      ++names;
      CHECK(e.at("name") == "thread_name");
      continue;
    }
    ++complete;
    CHECK(e.at("ph") == "X");
    CHECK(e.at("pid") == 0);
    const int tid = e.at("tid");
    CHECK((tid >= 0 && tid < 3));
    const std::string name = e.at("name");
    const std::string cat = e.at("cat");
    CHECK(((name[0] == 'F' && cat == "forward") || (name[0] == 'B' && cat == "backward-input") ||
           (name[0] == 'W' && cat == "backward-weight")));
    CHECK(e.at("dur").get<double>() == Approx(1000.0));
    CHECK(e.at("ts").get<double>() + e.at("dur").get<double>() <= r.makespan * 1000.0 + 1e-9);
  }
  CHECK(complete == 36);
  CHECK(names == 3);
}

TEST_CASE("trace writer reports an unwritable path as a usage error", "[trace]") {
  conveyor::test::TempDir dir;
  try {
    write_chrome_trace((dir / "no" / "such" / "dir" / "t.json").string(), {});
    FAIL("no throw");
  } catch (const conveyor::Error& e) {
    CHECK(e.kind() == conveyor::ErrorKind::kUsage);
    CHECK_THAT(e.message(), Catch::Contains("no/such/dir"));
  }
}
