// Checkpoints whose files are intact but which do not hold what they claim, and timelines a
// run abandoned, through the real binary:
// - a manifest cut to fewer stages, or a step directory holding another step's data, fails
//   `ckpt verify`, and resuming falls back past it as for a checksum failure;
// - after LATEST is moved back and the run resumed, the newer steps are moved aside, so a
//   later fallback cannot land in the abandoned timeline;
// - a LATEST holding binary bytes is quoted escaped in the log, never raw.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "tests/integration/checkpoint/train_helpers.h"

namespace fs = std::filesystem;
using namespace conveyor::test;
using namespace conveyor::test::ckpt;
using nlohmann::json;

namespace {

void edit_manifest(const fs::path& step_dir, const std::function<void(json&)>& edit) {
  auto m = json::parse(read_file(step_dir / "manifest.json"));
  edit(m);
  write_file(step_dir / "manifest.json", m.dump(1));
}

}  // namespace

TEST_CASE("a manifest cut to one stage fails verify, and resuming falls back past it",
          "[checkpoint][consistency]") {
  TempDir dir;
  const auto root = dir / "ckpt";
  const std::vector<std::string> run = {"--steps", "6", "--save-every", "2",
                                        "--keep",  "0", "--ckpt-dir",   root.string()};
  require_ok(train(2, run));
  edit_manifest(root / "step_000000006", [](json& m) {
    m["num_stages"] = 1;
    m["shards"] = json::array({m["shards"][0]});
  });

  auto verified = run_conveyor({"ckpt", "verify", root.string()});
  {
    INFO(verified.output);
    CHECK(verified.exit_code == 2);
    CHECK_THAT(verified.output, Catch::Contains("step_000000006") && Catch::Contains("2 stage(s)"));
  }
  auto resumed = train(2, run);
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  CHECK_THAT(resumed.output,
             Catch::Contains("skipping checkpoint") &&
                 Catch::Contains("resumed from " + (root / "step_000000004").string()));
  // The rejected step is kept aside for inspection; step 6 was redone.
  CHECK(fs::exists(root / "abandoned" / "step_000000006" / "manifest.json"));
  CHECK(latest(root) == "step_000000006");
  CHECK(run_conveyor({"ckpt", "verify", root.string()}).exit_code == 0);
}

TEST_CASE("a step directory holding another step's data fails verify and is skipped",
          "[checkpoint][consistency]") {
  TempDir dir;
  const auto root = dir / "ckpt";
  require_ok(
      train(1, {"--steps", "6", "--save-every", "2", "--keep", "0", "--ckpt-dir", root.string()}));
  fs::remove_all(root / "step_000000006");
  fs::copy(root / "step_000000004", root / "step_000000006", fs::copy_options::recursive);

  auto verified = run_conveyor({"ckpt", "verify", (root / "step_000000006").string()});
  {
    INFO(verified.output);
    CHECK(verified.exit_code == 2);
    CHECK_THAT(verified.output, Catch::Contains("named for step 6"));
  }
  auto resumed = train(1, {"--steps", "8", "--ckpt-dir", root.string()});
  INFO(resumed.output);
  REQUIRE(resumed.exit_code == 0);
  CHECK_THAT(resumed.output,
             Catch::Contains("named for step 6") &&
                 Catch::Contains("resumed from " + (root / "step_000000004").string()));
}

TEST_CASE("after LATEST is moved back, the newer steps are moved aside and never resumed",
          "[checkpoint][consistency]") {
  TempDir dir;
  const auto root = dir / "ckpt";
  auto run = [&](const std::string& exit_at) {
    return train(1, {"--steps", "20", "--save-every", "2", "--keep", "0", "--exit-at-step", exit_at,
                     "--ckpt-dir", root.string()});
  };
  require_ok(run("6"));
  write_file(root / "LATEST", "step_000000002\n");  // back to step 2, by hand

  auto back = run("3");  // resumes from step 2, commits step 3
  {
    INFO(back.output);
    REQUIRE(back.exit_code == 0);
    CHECK_THAT(back.output, Catch::Contains("step 2,") && Catch::Contains("moved checkpoint"));
  }
  CHECK(fs::exists(root / "abandoned" / "step_000000004"));
  CHECK(fs::exists(root / "abandoned" / "step_000000006"));
  CHECK_FALSE(fs::exists(root / "step_000000004"));
  CHECK_FALSE(fs::exists(root / "step_000000006"));
  CHECK(latest(root) == "step_000000003");

  // LATEST damaged (binary bytes, a terminal escape among them): the fallback scan finds
  // this timeline's newest step, and the log quotes LATEST escaped.
  write_file(root / "LATEST", std::string("\x1b[2J\x00\xff garbage", 14));
  auto again = run("5");
  INFO(again.output);
  REQUIRE(again.exit_code == 0);
  CHECK_THAT(again.output, Catch::Contains("resumed from " + (root / "step_000000003").string()));
  CHECK_THAT(again.output, Catch::Contains("\\x1b[2J\\x00\\xff garbage"));
  CHECK(again.output.find('\x1b') == std::string::npos);
}
