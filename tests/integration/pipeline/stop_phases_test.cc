// A stop request (SIGTERM/SIGUSR1, pipeline/runtime/stop_request.h) honoured outside the steps: in
// a validation pass and during --sample generation every rank gives up the optional work together,
// the step is saved first, and the run resumes as if uninterrupted. The signal lands at an exact
// point, on one rank, through the CONVEYOR_FAULT_STOP_IN_* test hooks
// (checkpoint/fault_injection.h).
#include <catch2/catch.hpp>

#include "tests/integration/pipeline/pipeline_test_util.h"

using namespace conveyor::test;

namespace {

std::vector<std::string> train_command(int stages) {
  if (stages == 1) return {"train"};
  return {"launch", "--nproc",  std::to_string(stages), "--", "conveyor",
          "train",  "--stages", std::to_string(stages)};
}

std::vector<std::string> with_validation(const TempDir& dir, const std::string& name, int steps) {
  const std::string val = (dir / "val.txt").string();
  write_file(val, read_file("/usr/share/games/fortunes/fortunes").substr(0, 4000));
  return with(
      tiny_model_args({.layers = 2, .microbatches = 2, .micro_batch_size = 2}),
      {"--steps", std::to_string(steps), "--val-data", val, "--eval-every", "2", "--ckpt-dir",
       (dir / name).string(), "--metrics", (dir / (name + ".jsonl")).string()});
}

}  // namespace

TEST_CASE("a stop request during validation saves that step and resumes as if none came",
          "[pipeline][stop]") {
  for (int stages : {1, 2}) {
    TempDir dir;
    INFO(stages << " stage(s)");
    const auto whole = with_validation(dir, "whole", 6);
    REQUIRE(run_conveyor(with(train_command(stages), whole)).exit_code == 0);

    // The signal reaches the last stage only, as validation after step 4 begins.
    const auto cut = with_validation(dir, "cut", 6);
    const std::string at = "CONVEYOR_FAULT_STOP_IN_VALIDATION=4:" + std::to_string(stages - 1);
    auto stopped = run_conveyor(with(train_command(stages), cut), {at});
    INFO(stopped.output);
    CHECK(stopped.exit_code == 4);
    CHECK(stopped.output.find("stopping after step 4") != std::string::npos);
    CHECK(read_file(dir / "cut" / "LATEST") == "step_000000004\n");
    CHECK(field_texts((dir / "cut.jsonl").string(), "val_loss").size() == 1);  // step 2's only
    CHECK(field_texts((dir / "cut.jsonl").string(), "loss").size() == 4);

    auto rerun = run_conveyor(with(train_command(stages), cut));
    INFO(rerun.output);
    REQUIRE(rerun.exit_code == 0);
    CHECK(rerun.output.find("resumed from") != std::string::npos);
    CHECK(field_texts((dir / "cut.jsonl").string(), "loss") ==
          field_texts((dir / "whole.jsonl").string(), "loss"));
    CHECK(state_checksums(dir / "cut") == state_checksums(dir / "whole"));
  }
}

TEST_CASE("a stop request during the last validation finds the last step already saved",
          "[pipeline][stop]") {
  TempDir dir;
  const auto args = with_validation(dir, "run", 4);
  auto r = run_conveyor(with(train_command(2), args), {"CONVEYOR_FAULT_STOP_IN_VALIDATION=4"});
  INFO(r.output);
  CHECK(r.exit_code == 0);  // every step is done and saved: nothing to resume
  CHECK(read_file(dir / "run" / "LATEST") == "step_000000004\n");
  CHECK(field_texts((dir / "run.jsonl").string(), "val_loss").size() == 1);  // step 2's only
}

TEST_CASE("a stop request during --sample cuts the sample short on every rank",
          "[pipeline][stop]") {
  TempDir dir;
  auto args = with(tiny_model_args({.layers = 2, .microbatches = 2, .micro_batch_size = 2}),
                   {"--steps", "2", "--sample", "40"});
  auto r = run_conveyor(with(train_command(2), args), {"CONVEYOR_FAULT_STOP_IN_SAMPLE=5:0"});
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("cut short: asked to stop") != std::string::npos);
  CHECK(sample_text(r.output).size() == 5);
}
