// Step and busy times come from the monotonic clock: a wall clock that jumps a day back and
// forth mid-run (tests/shims/clock_jump.cc, LD_PRELOAD) leaves every step time, bubble and
// trace duration sane.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "tests/integration/pipeline/pipeline_test_util.h"

using namespace conveyor::test;

TEST_CASE("a wall clock that jumps mid-run moves no step time, bubble or trace duration",
          "[pipeline][clock]") {
#ifdef CONVEYOR_SANITIZER_BUILD
  // The sanitizers' runtimes must come first in the library list, before any LD_PRELOAD shim.
  WARN("SKIPPED: an LD_PRELOAD clock shim cannot run under the sanitizers");
  return;
#else
  TempDir dir;
  const std::string metrics = (dir / "m.jsonl").string(), trace = (dir / "t.json").string();
  auto args = with({"launch", "--nproc", "2", "--", "conveyor", "train", "--stages", "2"},
                   tiny_model_args({.layers = 2, .microbatches = 4, .micro_batch_size = 1}));
  args = with(args, {"--steps", "6", "--metrics", metrics, "--trace", trace});
  auto r = run_conveyor(args, {std::string("LD_PRELOAD=") + CONVEYOR_CLOCK_JUMP_SHIM});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  for (const auto& text : lines_of(read_file(metrics), true)) {
    INFO(text);
    const auto row = nlohmann::json::parse(text);
    CHECK(row.at("bubble").get<double>() >= 0);
    CHECK(row.at("bubble").get<double>() <= 1);
    CHECK(row.at("step_ms").get<double>() > 0);
    CHECK(row.at("step_ms").get<double>() < 60e3);
  }
  const auto doc = nlohmann::json::parse(read_file(trace));
  for (const auto& e : doc.at("traceEvents")) {
    if (e.at("ph") != "X") continue;
    INFO(e.dump());
    CHECK(e.at("dur").get<double>() >= 0);
    CHECK(e.at("dur").get<double>() < 60e6);
  }
#endif
}
