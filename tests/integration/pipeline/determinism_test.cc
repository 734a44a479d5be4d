// The acceptance test of multi-stage training: on the CPU backend, 1, 2 and 4 stages with
// every schedule give bit-identical losses at every step, and the same final parameters
// (checked through a generated sample, which depends on every one of them).
#include <catch2/catch.hpp>

#include "tests/integration/pipeline/pipeline_test_util.h"

using namespace conveyor::test;

namespace {

// 8 layers so that 4 stages x 2 virtual stages still get one layer per piece; 4
// micro-batches so that interleaved runs at 2 and 4 stages (m % p == 0).
std::vector<std::string> tiny_args() {
  auto args = tiny_model_args({.layers = 8, .microbatches = 4, .micro_batch_size = 2});
  args.insert(args.end(), {"--steps", "20"});
  return args;
}

struct Layout {
  int stages;
  std::string schedule;
  int virtual_stages;
};

}  // namespace

TEST_CASE("1, 2 and 4 stages with every schedule give bit-identical losses", "[pipeline]") {
  TempDir dir;
  const auto base_path = (dir / "base.jsonl").string();
  auto base = train_on(1, with(tiny_args(), {"--metrics", base_path}));
  INFO(base.output);
  REQUIRE(base.exit_code == 0);
  const auto expected = loss_texts(base_path);
  REQUIRE(expected.size() == 20);
  REQUIRE(expected.front() != expected.back());  // it trained: the comparison means something

  const std::vector<Layout> layouts = {
      {2, "gpipe", 1}, {2, "1f1b", 1}, {2, "zb-h1", 1}, {2, "interleaved", 2},
      {4, "gpipe", 1}, {4, "1f1b", 1}, {4, "zb-h1", 1}, {4, "interleaved", 2},
  };
  for (const auto& l : layouts) {
    const auto path = (dir / (l.schedule + std::to_string(l.stages) + ".jsonl")).string();
    auto r = train_on(l.stages,
                      with(tiny_args(), {"--schedule", l.schedule, "--virtual-stages",
                                         std::to_string(l.virtual_stages), "--metrics", path}));
    INFO(l.stages << " stages, " << l.schedule << "\n" << r.output);
    REQUIRE(r.exit_code == 0);
    CHECK(loss_texts(path) == expected);
  }
}

TEST_CASE("1 and 4 stages end with the same parameters: the same sample", "[pipeline]") {
  TempDir dir;
  // A higher learning rate moves the model away from uniform bytes, so the sample is
  // mostly text (a zero byte would end printf's %s early and shorten the comparison).
  const auto args =
      with(tiny_args(), {"--steps", "10", "--lr", "1e-2", "--warmup", "2", "--sample", "64"});
  auto one = train_on(1, args);
  INFO(one.output);
  REQUIRE(one.exit_code == 0);
  const auto expected = sample_text(one.output);
  REQUIRE(expected.size() >= 32);

  // Interleaved puts the embedding, the head and the layers on different stages and chunks.
  auto four = train_on(4, with(args, {"--schedule", "interleaved", "--virtual-stages", "2"}));
  INFO(four.output);
  REQUIRE(four.exit_code == 0);
  CHECK(sample_text(four.output) == expected);

  // A different seed trains a different model: a sample can tell models apart.
  auto other = train_on(1, with(args, {"--seed", "7"}));
  REQUIRE(other.exit_code == 0);
  CHECK(sample_text(other.output) != expected);
}
