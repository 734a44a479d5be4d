// Exact resume through the real binary: a run stopped with --exit-at-step and resumed gives
// bit-identical per-step losses and final parameters and Adam moments to a run that never
// stopped, on 1 and 4 stages, resumed on fewer stages (resharding), and with --async-save.
#include <catch2/catch.hpp>

#include <string>
#include <utility>

#include "tests/integration/checkpoint/train_helpers.h"

namespace fs = std::filesystem;
using namespace conveyor::test;
using namespace conveyor::test::ckpt;

namespace {

const char* kFinal = "step_000000020";

}  // namespace

TEST_CASE("1 stage: 10 steps + resume == 20 straight steps, bit for bit", "[checkpoint][resume]") {
  TempDir dir;
  require_ok(
      train(1, {"--ckpt-dir", (dir / "a").string(), "--metrics", (dir / "a.jsonl").string()}));
  require_ok(train(1, {"--ckpt-dir", (dir / "b").string(), "--metrics", (dir / "b.jsonl").string(),
                       "--exit-at-step", "10"}));
  REQUIRE(latest(dir / "b") == "step_000000010");
  auto resumed =
      train(1, {"--ckpt-dir", (dir / "b").string(), "--metrics", (dir / "b.jsonl").string()});
  require_ok(resumed);
  CHECK_THAT(resumed.output, Catch::Contains("resumed from") && Catch::Contains("step 10"));

  const auto straight = losses(dir / "a.jsonl");
  REQUIRE(straight.size() == 20);
  REQUIRE(losses(dir / "b.jsonl") == straight);  // 10 + 10 lines, appended
  require_bit_identical(read_all(dir / "a" / kFinal), read_all(dir / "b" / kFinal));
}

TEST_CASE("4 stages: 10 steps + resume on 4, 2 and 1 stages == 20 straight steps, bit for bit",
          "[checkpoint][resume]") {
  TempDir dir;
  require_ok(
      train(4, {"--ckpt-dir", (dir / "a").string(), "--metrics", (dir / "a.jsonl").string()}));
  const auto straight = losses(dir / "a.jsonl");
  REQUIRE(straight.size() == 20);
  const auto reference = read_all(dir / "a" / kFinal);

  require_ok(train(4, {"--ckpt-dir", (dir / "half").string(), "--metrics",
                       (dir / "half.jsonl").string(), "--exit-at-step", "10"}));
  const auto first_half = losses(dir / "half.jsonl");
  REQUIRE(first_half == std::vector<std::string>(straight.begin(), straight.begin() + 10));

  for (int stages : {4, 2, 1}) {
    {
      // A loop, not SECTIONs: Catch2 would rerun the two reference runs for every section.
      INFO("resumed on " << stages << " stage(s)");
      const auto root = dir / ("resume" + std::to_string(stages));
      fs::copy(dir / "half", root, fs::copy_options::recursive);
      const auto metrics = dir / ("resume" + std::to_string(stages) + ".jsonl");
      auto r = train(stages, {"--ckpt-dir", root.string(), "--metrics", metrics.string()});
      require_ok(r);
      CHECK_THAT(r.output, Catch::Contains("saved by 4 stage(s)"));
      REQUIRE(losses(metrics) == std::vector<std::string>(straight.begin() + 10, straight.end()));
      const auto final_dir = root / kFinal;
      REQUIRE(conveyor::checkpoint::read_manifest(final_dir).num_shards == stages);  // one replica
      require_bit_identical(reference, read_all(final_dir));
    }
  }
}

TEST_CASE("a 1f1b checkpoint resumes under zb-v and a zb-v one under 1f1b, bit for bit",
          "[checkpoint][resume]") {
  // zb-v cuts the model into 2 x stages pieces placed in a V: a different partition and
  // placement of the same parameters, loaded by name.
  TempDir dir;
  require_ok(
      train(2, {"--ckpt-dir", (dir / "a").string(), "--metrics", (dir / "a.jsonl").string()}));
  const auto straight = losses(dir / "a.jsonl");
  REQUIRE(straight.size() == 20);
  const auto reference = read_all(dir / "a" / kFinal);
  for (const auto& [first, second] : {std::pair{"1f1b", "zb-v"}, std::pair{"zb-v", "1f1b"}}) {
    INFO(first << " then " << second);
    const auto root = dir / (std::string(first) + "-" + second);
    const auto metrics = dir / (std::string(first) + "-" + second + ".jsonl");
    require_ok(train(2, {"--schedule", first, "--ckpt-dir", root.string(), "--metrics",
                         metrics.string(), "--exit-at-step", "10"}));
    require_ok(train(
        2, {"--schedule", second, "--ckpt-dir", root.string(), "--metrics", metrics.string()}));
    CHECK(losses(metrics) == straight);
    require_bit_identical(reference, read_all(root / kFinal));
  }
}

TEST_CASE(
    "async saves give the same losses and checkpoints as synchronous saves, also across "
    "a resume",
    "[checkpoint][resume][async]") {
  TempDir dir;
  const std::vector<std::string> common = {"--save-every", "5", "--keep", "0"};
  auto run = [&](const std::string& name, std::vector<std::string> extra,
                 std::vector<std::string> env = {}) {
    extra.insert(extra.end(), common.begin(), common.end());
    extra.insert(extra.end(), {"--ckpt-dir", (dir / name).string(), "--metrics",
                               (dir / (name + ".jsonl")).string()});
    auto r = train(2, extra, env);
    require_ok(r);
    CHECK_THAT(r.output, !Catch::Contains("failed"));
  };
  run("sync", {});
  run("async", {"--async-save"});
  run("split", {"--async-save", "--exit-at-step", "10"});
  REQUIRE(latest(dir / "split") == "step_000000010");
  run("split", {"--async-save"});
  // The snapshot is copied in the background while the next step runs; a copy held back
  // past that step's optimizer update must still capture the state at the save's step.
  run("slow", {"--async-save"}, {"CONVEYOR_FAULT_SLOW_SNAPSHOT=10"});

  const auto expected = losses(dir / "sync.jsonl");
  REQUIRE(expected.size() == 20);
  CHECK(losses(dir / "async.jsonl") == expected);
  CHECK(losses(dir / "split.jsonl") == expected);
  CHECK(losses(dir / "slow.jsonl") == expected);
  // Every periodic save is committed and identical, not just the last one.
  for (const char* step : {"step_000000005", "step_000000010", "step_000000015", kFinal}) {
    INFO(step);
    const auto sync = read_all(dir / "sync" / step);
    require_bit_identical(sync, read_all(dir / "async" / step));
    require_bit_identical(sync, read_all(dir / "split" / step));
    require_bit_identical(sync, read_all(dir / "slow" / step));
  }
  CHECK(latest(dir / "async") == kFinal);
}
