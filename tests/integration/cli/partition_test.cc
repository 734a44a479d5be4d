// --partition auto end to end: `conveyor schedule` prints the partition and its predicted
// costs, `conveyor train` runs it to the same losses as the layer-balanced split, and a
// partition that cannot place every layer once exits 2 before anything starts.
#include <catch2/catch.hpp>

#include "tests/test_util.h"

using conveyor::test::loss_texts;
using conveyor::test::run_conveyor;
using conveyor::test::TempDir;
using conveyor::test::with;

namespace {

const std::vector<std::string> kGpt2Small = {"--layers", "12",    "--dim", "768",     "--heads",
                                             "12",       "--seq", "1024",  "--vocab", "50257"};

void expect_usage_error(const std::vector<std::string>& args,
                        const std::vector<std::string>& must_mention) {
  const auto r = run_conveyor(args);
  INFO(r.output);
  REQUIRE(r.exit_code == 2);
  for (const auto& text : must_mention) CHECK(r.output.find(text) != std::string::npos);
}

}  // namespace

TEST_CASE("schedule --partition auto prints the partition and each stage's cost", "[cli]") {
  const auto r =
      run_conveyor(with({"schedule", "--stages", "4", "--partition", "auto"}, kGpt2Small));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("partition auto: 3,4,4,1 layers per piece (12 layers, dim 768") !=
        std::string::npos);
  CHECK(r.output.find("11-11  head") != std::string::npos);
  CHECK(r.output.find("stage cost max/min 1.8") != std::string::npos);
  CHECK(r.output.find("(the layer-balanced 3,3,3,3: 2.4") != std::string::npos);
  // An explicit list is shown the same way; without --partition nothing is added.
  const auto listed =
      run_conveyor(with({"schedule", "--stages", "4", "--partition", "3,4,4,1"}, kGpt2Small));
  CHECK(listed.exit_code == 0);
  CHECK(listed.output.find("partition 3,4,4,1: 3,4,4,1 layers per piece") != std::string::npos);
  const auto plain = run_conveyor(with({"schedule", "--stages", "4"}, kGpt2Small));
  CHECK(plain.exit_code == 0);
  CHECK(plain.output.find("layers per piece") == std::string::npos);
}

TEST_CASE("schedule refuses a partition train would refuse, before printing", "[cli]") {
  expect_usage_error({"schedule", "--stages", "4", "--partition", "auto", "--layers", "3"},
                     {"--partition auto", "only 3 layers", "--stages"});
  expect_usage_error({"schedule", "--stages", "4", "--partition", "3,3,2", "--layers", "8"},
                     {"--partition '3,3,2' has 3 entries"});
  expect_usage_error(
      {"schedule", "--stages", "2", "--partition", "auto", "--dim", "100", "--heads", "3"},
      {"--dim 100 is not divisible by --heads 3"});
  // Nothing of the schedule is printed first.
  const auto r = run_conveyor({"schedule", "--stages", "4", "--partition", "4,4", "--layers", "8"});
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("bubble") == std::string::npos);
}

TEST_CASE("train --partition with the wrong number of pieces exits 2", "[cli]") {
  expect_usage_error({"train", "--layers", "8", "--partition", "3,3,2"},
                     {"--partition '3,3,2' has 3 entries", "1 pieces"});
}

TEST_CASE("train --partition auto gives the losses of the layer-balanced split", "[cli]") {
  // GPT-2's vocabulary on a narrow model: the head outweighs the blocks, so auto puts 3 of
  // the 4 layers on stage 0; the losses are bit-identical whatever the partition.
  TempDir dir;
  const auto train = with(
      {"launch", "--nproc", "2", "--", "conveyor", "train", "--stages", "2", "--vocab", "50257",
       "--steps", "3"},
      conveyor::test::tiny_model_args({.layers = 4, .microbatches = 2, .micro_batch_size = 2}));
  const auto schedule =
      run_conveyor({"schedule", "--stages", "2", "--partition", "auto", "--layers", "4", "--dim",
                    "16", "--heads", "2", "--seq", "16", "--vocab", "50257"});
  CHECK(schedule.output.find("partition auto: 3,1 layers per piece") != std::string::npos);
  const auto balanced = dir / "balanced.jsonl", automatic = dir / "auto.jsonl";
  const auto a = run_conveyor(with(train, {"--metrics", balanced.string()}));
  INFO(a.output);
  REQUIRE(a.exit_code == 0);
  const auto b =
      run_conveyor(with(train, {"--partition", "auto", "--metrics", automatic.string()}));
  INFO(b.output);
  REQUIRE(b.exit_code == 0);
  const auto expected = loss_texts(balanced.string());
  REQUIRE(expected.size() == 3);
  CHECK(loss_texts(automatic.string()) == expected);
}
