// Every schedule on every small shape: 1..4 stages and 1..8 micro-batches. Each run either
// trains (and gives the one-stage run's losses bit for bit) or is refused at start-up with
// exit 2 and a usage message; none waits on a peer that never sends.
#include <catch2/catch.hpp>

#include <map>

#include "tests/integration/pipeline/pipeline_test_util.h"

using namespace conveyor::test;

namespace {

constexpr int kMaxStages = 4;
constexpr int kMaxMicrobatches = 8;

std::vector<std::string> sweep_args(int microbatches, const std::string& metrics) {
  // 8 layers: interleaved with 2 virtual stages on 4 stages needs one layer per piece.
  auto args = tiny_model_args({.layers = 8, .microbatches = microbatches, .micro_batch_size = 1});
  return with(args, {"--steps", "2", "--metrics", metrics});
}

// The losses of the one-stage run with `microbatches` micro-batches (the reference).
const std::vector<std::string>& reference_losses(int microbatches) {
  static std::map<int, std::vector<std::string>> cache;
  if (!cache.contains(microbatches)) {
    TempDir dir;
    const std::string metrics = (dir / "m.jsonl").string();
    auto r = train_on(1, sweep_args(microbatches, metrics));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    cache[microbatches] = loss_texts(metrics);
    REQUIRE(cache[microbatches].size() == 2);
  }
  return cache[microbatches];
}

// `may_refuse`: a shape this schedule cannot run is refused with exit 2 at start-up.
void sweep(const std::string& schedule, bool may_refuse,
           const std::vector<std::string>& extra = {}) {
  int trained = 0, refused = 0;
  for (int p = 1; p <= kMaxStages; ++p) {
    for (int m = 1; m <= kMaxMicrobatches; ++m) {
      TempDir dir;
      const std::string metrics = (dir / "m.jsonl").string();
      auto r = train_on(p, with(with(sweep_args(m, metrics), {"--schedule", schedule}), extra));
      INFO(schedule << " on " << p << " stage(s), " << m << " micro-batch(es)\n" << r.output);
      if (may_refuse && r.exit_code == 2) {
        CHECK(r.output.find("error: --schedule " + schedule) != std::string::npos);
        ++refused;
        continue;
      }
      REQUIRE(r.exit_code == 0);
      CHECK(loss_texts(metrics) == reference_losses(m));
      ++trained;
    }
  }
  INFO(schedule << ": " << trained << " trained, " << refused << " refused");
  CHECK(trained > 0);
  if (!may_refuse) CHECK(refused == 0);
}

}  // namespace

TEST_CASE("gpipe trains on 1-4 stages with 1-8 micro-batches", "[pipeline][sweep]") {
  sweep("gpipe", false);
}

TEST_CASE("1f1b trains on 1-4 stages with 1-8 micro-batches", "[pipeline][sweep]") {
  sweep("1f1b", false);
}

TEST_CASE("zb-h1 trains on 1-4 stages with 1-8 micro-batches", "[pipeline][sweep]") {
  sweep("zb-h1", false);
}

TEST_CASE("interleaved runs or is refused at start on 1-4 stages with 1-8 micro-batches",
          "[pipeline][sweep]") {
  sweep("interleaved", true, {"--virtual-stages", "2"});
}
