// Preemption and restart (pipeline/runtime/stop_request.h, launcher/launch/supervisor.h): SIGTERM
// or SIGUSR1 makes every rank finish its step, commit a checkpoint and exit 4; rerunning the same
// command ends with the weights, optimizer state and metrics of a run never interrupted. A crashed
// attempt restarted by --max-restarts rolls its metrics back to the resumed step.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "tests/integration/pipeline/pipeline_test_util.h"

using namespace conveyor::test;

namespace {

std::vector<std::string> train_args(const std::string& ckpt, const std::string& metrics,
                                    int steps) {
  auto args = tiny_model_args({.layers = 4, .microbatches = 4, .micro_batch_size = 2});
  return with(args, {"--steps", std::to_string(steps), "--stages", "2", "--ckpt-dir", ckpt,
                     "--metrics", metrics});
}

std::string launch_command(const std::vector<std::string>& train) {
  return shell_command(
      with({CONVEYOR_BIN, "launch", "--nproc", "2", "--", "conveyor", "train"}, train));
}

}  // namespace

TEST_CASE("SIGTERM at a random step then a rerun gives the uninterrupted run's state",
          "[launch][checkpoint]") {
  TempDir dir;
  constexpr int kSteps = 200;
  const auto whole = train_args((dir / "whole").string(), (dir / "whole.jsonl").string(), kSteps);
  auto uninterrupted =
      run_conveyor(with({"launch", "--nproc", "2", "--", "conveyor", "train"}, whole));
  REQUIRE(uninterrupted.exit_code == 0);

  std::random_device random;
  const int after_rows = std::uniform_int_distribution<int>(1, 60)(random);
  INFO("SIGTERM once the metrics have " << after_rows << " rows");
  const auto cut = train_args((dir / "cut").string(), (dir / "cut.jsonl").string(), kSteps);
  const std::string script = fmt::format(
      "{} & launch=$!\n"
      "until [ -s {m} ] && [ $(wc -l < {m}) -ge {n} ]; do sleep 0.01; done\n"
      "kill -TERM $launch\n"
      "wait $launch; echo \"launch exit $?\"\n",
      launch_command(cut), fmt::arg("m", shell_quoted((dir / "cut.jsonl").string())),
      fmt::arg("n", after_rows));
  auto first = run_program({"sh", "-c", script}, {}, 120);
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  CHECK(first.output.find("launch exit 4") != std::string::npos);
  CHECK(first.output.find("asked to stop") != std::string::npos);
  const size_t rows_at_stop = loss_texts((dir / "cut.jsonl").string()).size();
  CHECK(rows_at_stop < static_cast<size_t>(kSteps));

  auto rerun = run_conveyor(with({"launch", "--nproc", "2", "--", "conveyor", "train"}, cut));
  INFO(rerun.output);
  REQUIRE(rerun.exit_code == 0);
  CHECK(rerun.output.find(fmt::format("resumed from")) != std::string::npos);
  CHECK(state_checksums(dir / "cut") == state_checksums(dir / "whole"));
  CHECK(loss_texts((dir / "cut.jsonl").string()) == loss_texts((dir / "whole.jsonl").string()));
}

TEST_CASE("a signalled run without --ckpt-dir saves nothing and exits as killed", "[launch]") {
  TempDir dir;
  auto args = tiny_model_args({.layers = 2, .microbatches = 2, .micro_batch_size = 2});
  const std::string train =
      shell_command(with(with({CONVEYOR_BIN, "train"}, args),
                         {"--steps", "100000", "--metrics", (dir / "m.jsonl").string()}));
  const std::string script = fmt::format(
      "{} & run=$!\n"
      "until [ -s {m} ]; do sleep 0.01; done\n"
      "kill -USR1 $run; wait $run; echo \"train exit $?\"\n",
      train, fmt::arg("m", shell_quoted((dir / "m.jsonl").string())));
  auto r = run_program({"sh", "-c", script}, {}, 120);
  INFO(r.output);
  CHECK(r.output.find("train exit 138") != std::string::npos);  // 128 + SIGUSR1
  CHECK(r.output.find("nothing is saved (no --ckpt-dir)") != std::string::npos);
  // The warning names the exit code the process then has.
  CHECK(r.output.find("(no --ckpt-dir); exit 138") != std::string::npos);
}

TEST_CASE("a restarted job resumes with its restart count and no step twice in the metrics",
          "[launch][checkpoint]") {
  TempDir dir;
  constexpr int kSteps = 16;
  const auto whole = train_args((dir / "whole").string(), (dir / "whole.jsonl").string(), kSteps);
  REQUIRE(
      run_conveyor(with({"launch", "--nproc", "2", "--", "conveyor", "train"}, whole)).exit_code ==
      0);

  // The first attempt's stages die right after committing step 8 (save every 4), with the
  // metrics already past it on the reporting stage; the restart resumes from step 8.
  auto args = train_args((dir / "ckpt").string(), (dir / "m.jsonl").string(), kSteps);
  args = with(args, {"--save-every", "4"});
  std::string rank_cmd =
      "if [ \"$CONVEYOR_RESTART_COUNT\" = 0 ]; then export CONVEYOR_FAULT_KILL_AFTER_COMMIT=8; "
      "fi; exec \"$0\" train \"$@\"";
  auto launch = with(
      {"launch", "--nproc", "2", "--max-restarts", "1", "--", "sh", "-c", rank_cmd, CONVEYOR_BIN},
      args);
  auto r = run_conveyor(launch);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("restart 1 of 1") != std::string::npos);
  CHECK(loss_texts((dir / "m.jsonl").string()) == loss_texts((dir / "whole.jsonl").string()));
  const auto restarts = field_texts((dir / "m.jsonl").string(), "restarts");
  REQUIRE(restarts.size() == static_cast<size_t>(kSteps));
  CHECK(restarts.front() == "0");
  CHECK(restarts.back() == "1");
  CHECK(state_checksums(dir / "ckpt") == state_checksums(dir / "whole"));
}
