// Crash and failure during a save, through the real binary, using the test hooks of
// checkpoint/fault_injection.h to stop a stage at an exact point of the commit protocol:
// - a SIGKILL in the middle of writing a shard, just before the commit point, or just after
//   it (before LATEST moves) leaves LATEST on the previous complete checkpoint; the next start
//   resumes from it and finishes with results bit-identical to an uninterrupted run;
// - a failed async save is reported, is not committed, and training goes on unharmed;
// - a failed synchronous save stops the run (exit 1) and leaves LATEST alone.
#include <catch2/catch.hpp>

#include "tests/integration/checkpoint/train_helpers.h"

namespace fs = std::filesystem;
using namespace conveyor::test;
using namespace conveyor::test::ckpt;

namespace {

// An uninterrupted 2-stage run of 20 steps, saving every 5: losses and final state. Computed
// once per test process (every scenario below compares against it).
struct Reference {
  TempDir dir;
  std::vector<std::string> losses;
  Tensors final_state;
};

const Reference& reference() {
  static const Reference* ref = [] {
    auto* r = new Reference;
    auto run = train(2, {"--save-every", "5", "--ckpt-dir", (r->dir / "ckpt").string(), "--metrics",
                         (r->dir / "m.jsonl").string()});
    INFO(run.output);
    REQUIRE(run.exit_code == 0);
    r->losses = ckpt::losses(r->dir / "m.jsonl");
    REQUIRE(r->losses.size() == 20);
    r->final_state = read_all(r->dir / "ckpt" / "step_000000020");
    return r;
  }();
  return *ref;
}

bool has_temp_entry(const fs::path& root) {
  for (const auto& e : fs::directory_iterator(root)) {
    if (e.path().filename().string().rfind(".tmp-", 0) == 0) return true;
  }
  return false;
}

struct Scenario {
  const char* name;
  const char* env;  // the armed fault
  bool async;
  // Which step directories exist after the crash, besides step_000000005.
  bool temp_10_left, step_10_committed;
};

}  // namespace

TEST_CASE(
    "a SIGKILL during a save leaves LATEST on the previous checkpoint, and the next start "
    "resumes from it and matches an uninterrupted run",
    "[checkpoint][crash]") {
  const auto scenario =
      GENERATE(Scenario{"kill in the middle of stage 1's shard (sync)",
                        "CONVEYOR_FAULT_KILL_IN_SAVE=10:1", false, true, false},
               Scenario{"kill in the middle of stage 1's shard (async writer thread)",
                        "CONVEYOR_FAULT_KILL_IN_SAVE=10:1", true, true, false},
               Scenario{"kill with every shard and the manifest written, before the commit rename",
                        "CONVEYOR_FAULT_KILL_BEFORE_COMMIT=10", false, true, false},
               Scenario{"kill after the commit rename, before LATEST is replaced",
                        "CONVEYOR_FAULT_KILL_AFTER_COMMIT=10", false, false, true});
  INFO(scenario.name);
  const auto& ref = reference();
  TempDir dir;
  const auto root = dir / "ckpt";
  std::vector<std::string> args = {"--save-every", "5", "--ckpt-dir", root.string()};
  if (scenario.async) args.push_back("--async-save");
  args.insert(args.end(), {"--metrics", (dir / "m.jsonl").string()});  // last: replaced below

  auto crashed = train(2, args, {scenario.env});
  {
    INFO(crashed.output);
    REQUIRE(crashed.exit_code != 0);
    REQUIRE_THAT(crashed.output, Catch::Contains("fault injection"));
  }
  CHECK(latest(root) == "step_000000005");
  CHECK(fs::exists(root / "step_000000005" / "manifest.json"));
  CHECK(fs::exists(root / ".tmp-step_000000010") == scenario.temp_10_left);
  CHECK(fs::exists(root / "step_000000010") == scenario.step_10_committed);
  // The fault hit where it was meant to: stage 1's shard half written (its .part file was never
  // renamed), or every shard and the manifest written but not renamed into place.
  const auto tmp10 = root / ".tmp-step_000000010";
  if (std::string(scenario.env).find("KILL_IN_SAVE") != std::string::npos) {
    CHECK(fs::exists(tmp10 / "stage_00001.h5.part"));
    CHECK_FALSE(fs::exists(tmp10 / "stage_00001.h5"));
  } else if (scenario.temp_10_left) {
    CHECK(fs::exists(tmp10 / "manifest.json"));
    CHECK(fs::exists(tmp10 / "stage_00001.h5"));
  }
  CHECK(run_conveyor({"ckpt", "verify", root.string()}).exit_code == 0);

  // The next start (no fault armed) resumes from step 5, cleans up, and finishes the run.
  const auto after = dir / "after.jsonl";
  args[args.size() - 1] = after.string();
  auto resumed = train(2, args);
  {
    INFO(resumed.output);
    REQUIRE(resumed.exit_code == 0);
    CHECK_THAT(resumed.output, Catch::Contains("step 5,"));
  }
  CHECK_FALSE(has_temp_entry(root));
  CHECK(latest(root) == "step_000000020");
  REQUIRE(losses(after) == std::vector<std::string>(ref.losses.begin() + 5, ref.losses.end()));
  require_bit_identical(ref.final_state, read_all(root / "step_000000020"));
  // The redone step 10 equals the reference's too (it replaced a committed one in the last
  // scenario).
  require_bit_identical(read_all(ref.dir / "ckpt" / "step_000000010"),
                        read_all(root / "step_000000010"));
}

TEST_CASE("a failed async save is reported, not committed, and training goes on unharmed",
          "[checkpoint][crash][async]") {
  const auto& ref = reference();
  TempDir dir;
  const auto root = dir / "ckpt";
  // Stage 1's shard of step 10 fails; stage 0's succeeds: the stages must agree not to commit.
  auto r = train(2,
                 {"--async-save", "--save-every", "5", "--keep", "0", "--ckpt-dir", root.string(),
                  "--metrics", (dir / "m.jsonl").string()},
                 {"CONVEYOR_FAULT_FAIL_SAVE=10:1"});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("async save of step 10 failed") &&
                           Catch::Contains("injected failure"));
  CHECK_FALSE(fs::exists(root / "step_000000010"));
  for (const char* step : {"step_000000005", "step_000000015", "step_000000020"}) {
    CHECK(fs::exists(root / step / "manifest.json"));
  }
  CHECK(latest(root) == "step_000000020");
  CHECK(run_conveyor({"ckpt", "verify", root.string()}).exit_code == 0);
  CHECK(losses(dir / "m.jsonl") == ref.losses);
  require_bit_identical(ref.final_state, read_all(root / "step_000000020"));
}

TEST_CASE("a failed async save of the last step exits 1 and leaves LATEST on the previous step",
          "[checkpoint][crash][async]") {
  TempDir dir;
  const auto root = dir / "ckpt";
  auto r =
      train(1, {"--async-save", "--save-every", "5", "--steps", "10", "--ckpt-dir", root.string()},
            {"CONVEYOR_FAULT_FAIL_SAVE=10"});
  INFO(r.output);
  CHECK(r.exit_code == 1);  // the run's final checkpoint is lost: not a success
  CHECK_THAT(r.output, Catch::Contains("async save of step 10 failed"));
  CHECK_THAT(r.output, Catch::Contains("final checkpoint (step 10) could not be written"));
  CHECK(latest(root) == "step_000000005");
  CHECK_FALSE(fs::exists(root / "step_000000010"));
  CHECK(run_conveyor({"ckpt", "verify", root.string()}).exit_code == 0);
}

TEST_CASE("a failed synchronous save stops the run with exit 1 and leaves LATEST alone",
          "[checkpoint][crash]") {
  TempDir dir;
  const auto root = dir / "ckpt";
  auto r = train(1, {"--save-every", "5", "--steps", "10", "--ckpt-dir", root.string()},
                 {"CONVEYOR_FAULT_FAIL_SAVE=10"});
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("injected failure") && Catch::Contains("step 10"));
  CHECK(latest(root) == "step_000000005");
  CHECK(run_conveyor({"ckpt", "verify", root.string()}).exit_code == 0);
}
