// Activation memory: each stage reports the most micro-batches it held at once (F done, W
// not yet done) and the slots it used; the schedules promise 1F1B min(p - s, m) on stage s,
// ZB-H1 min(p, m) on every stage (a micro-batch is kept until its W), GPipe all m. The
// executor's peak must equal the validator's, and the slots exceed it by at most the one
// receive posted ahead.
#include <catch2/catch.hpp>

#include <map>
#include <regex>
#include <sstream>

#include "pipeline/schedule/schedule.h"
#include "pipeline/schedule/schedule_validator.h"
#include "tests/integration/pipeline/pipeline_test_util.h"

using namespace conveyor::test;
using namespace conveyor::pipeline;

namespace {

struct InFlight {
  int peak = -1, slots = -1, bound = -1;
};

// stage -> the "stage S: at most K micro-batches in flight (schedule bound B)" line's values.
std::map<int, InFlight> in_flight(const std::string& output) {
  static const std::regex re(
      R"(stage (\d+): at most (\d+) micro-batch(?:es)? in flight, (\d+) activation slots? in use \(schedule bound (\d+)\))");
  std::map<int, InFlight> out;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_search(line, m, re)) continue;
    int rank = -1;
    strip_rank_prefix(line, &rank);
    const int stage = std::stoi(m[1]);
    CHECK(rank == stage);  // one process per stage, rank = stage
    CHECK(out.count(stage) == 0);
    out[stage] = {std::stoi(m[2]), std::stoi(m[3]), std::stoi(m[4])};
  }
  return out;
}

std::map<int, InFlight> run(const std::string& schedule, int microbatches) {
  auto r = train_on(4, {"--layers", "4", "--dim", "16", "--heads", "2", "--seq", "16",
                        "--micro-batch-size", "1", "--steps", "2", "--print-every", "0",
                        "--schedule", schedule, "--microbatches", std::to_string(microbatches)});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto got = in_flight(r.output);
  REQUIRE(got.size() == 4);
  const auto sim = validate_schedule(make_schedule(parse_schedule_kind(schedule), 4, microbatches));
  for (const auto& [s, f] : got) {
    INFO("stage " << s);
    CHECK(f.peak == sim.peak_inflight[s]);
    CHECK(f.slots >= f.peak);
    CHECK(f.slots <= f.bound + 1);
  }
  return got;
}

}  // namespace

TEST_CASE("1F1B holds at most p - s micro-batches on stage s, GPipe all m", "[pipeline]") {
  constexpr int p = 4;
  SECTION("1f1b, m = 8") {
    for (const auto& [s, f] : run("1f1b", 8)) {
      INFO("stage " << s);
      CHECK(f.peak == std::min(p - s, 8));
      CHECK(f.bound == std::min(p - s, 8));
    }
  }
  SECTION("1f1b, m = 2: fewer micro-batches than stages") {
    for (const auto& [s, f] : run("1f1b", 2)) {
      INFO("stage " << s);
      CHECK(f.peak == std::min(p - s, 2));
    }
  }
  SECTION("zb-h1, m = 8: p on every stage (kept until W)") {
    for (const auto& [s, f] : run("zb-h1", 8)) {
      INFO("stage " << s);
      CHECK(f.peak == p);
      CHECK(f.bound == p);
    }
  }
  SECTION("gpipe, m = 8") {
    for (const auto& [s, f] : run("gpipe", 8)) {
      INFO("stage " << s);
      CHECK(f.peak == 8);
      CHECK(f.bound == 8);
    }
  }
}
