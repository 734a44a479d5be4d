// MFU in `conveyor train`'s metrics and progress line (train/mfu.h): with --peak-tflops every
// step row has "mfu", the row's tokens_per_s x the model's FLOPs per token over ranks x peak
// within the rounding of the printed numbers; without a peak there is none. --peak-tflops
// says where a run runs, not what it computes: a resume may change it, and the ranks of one
// job may be told different peaks.
#include <catch2/catch.hpp>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/flops.h"
#include "tests/test_util.h"

using namespace conveyor;
using namespace conveyor::test;

namespace {

constexpr int kLayers = 2;

// tiny_model_args' model (d=16, 2 heads, T=16, bytes) with kLayers layers.
double tiny_flops_per_token() {
  model::ModelConfig c;
  c.layers = kLayers;
  c.heads = 2;
  c.dim = 16;
  c.seq = 16;
  c.vocab = 256;
  return model::training_flops_per_token(c);
}

std::vector<std::string> tiny_train(const std::vector<std::string>& more) {
  return with(with({"train"}, tiny_model_args({.layers = kLayers, .microbatches = 2})), more);
}

std::vector<nlohmann::json> step_rows(const std::string& metrics_path) {
  std::vector<nlohmann::json> rows;
  for (const auto& line : lines_of(read_file(metrics_path), true)) {
    INFO(line);
    rows.push_back(nlohmann::json::parse(line));
  }
  return rows;
}

// The row's mfu against the one its own tokens_per_s gives: tokens_per_s is printed to 0.1
// and mfu to 4 significant digits, so they agree within those two roundings.
void check_mfu(const nlohmann::json& row, int ranks, double peak_tflops) {
  INFO(row.dump());
  REQUIRE(row.contains("mfu"));
  const double mfu = row.at("mfu").get<double>();
  const double tokens_per_s = row.at("tokens_per_s").get<double>();
  const double per_token_per_s = tiny_flops_per_token() / (ranks * peak_tflops * 1e12);
  const double expected = tokens_per_s * per_token_per_s;
  CHECK(mfu > 0);
  CHECK(std::fabs(mfu - expected) <= 0.05 * per_token_per_s + 5.01e-4 * mfu);
}

}  // namespace

TEST_CASE("train --peak-tflops puts mfu in every step row and MFU in the progress line",
          "[cli][mfu]") {
  TempDir dir;
  const std::string metrics = (dir / "m.jsonl").string();
  auto r = run_conveyor(tiny_train(
      {"--steps", "4", "--peak-tflops", "0.01", "--print-every", "1", "--metrics", metrics}));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output,
             Catch::Contains("MFU against 0.01 TFLOP/s per rank (--peak-tflops) x 1 rank"));
  const auto rows = step_rows(metrics);
  REQUIRE(rows.size() == 4);
  for (const auto& row : rows) check_mfu(row, 1, 0.01);
  int progress_lines = 0;
  for (const auto& line : lines_of(r.output)) {
    if (line.rfind("step ", 0) != 0) continue;
    ++progress_lines;
    CHECK_THAT(line, Catch::Contains("% | ETA "));
    CHECK_THAT(line, Catch::Contains(" | MFU "));
  }
  CHECK(progress_lines == 4);
}

TEST_CASE("without a peak there is no mfu, in the rows or the progress line", "[cli][mfu]") {
  TempDir dir;
  const std::string metrics = (dir / "m.jsonl").string();
  auto r = run_conveyor(tiny_train({"--steps", "2", "--print-every", "1", "--metrics", metrics}));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const auto rows = step_rows(metrics);
  REQUIRE(rows.size() == 2);
  for (const auto& row : rows) CHECK_FALSE(row.contains("mfu"));
  CHECK(r.output.find("MFU") == std::string::npos);
}

TEST_CASE("ranks told different peaks still form one job, and MFU counts every rank",
          "[cli][mfu]") {
  // Like --gpu, --peak-tflops is left out of the fingerprint the ranks must agree on: two
  // hosts with different devices may be given their own. Rank 1 (stage 1, the head) reports.
  TempDir dir;
  const std::string metrics = (dir / "m.jsonl").string();
  const std::string train =
      shell_command(with({CONVEYOR_BIN, "train", "--stages", "2"},
                         with(tiny_model_args({.layers = kLayers, .microbatches = 2}),
                              {"--steps", "3", "--metrics", metrics})));
  auto r = run_conveyor({"launch", "--nproc", "2", "--", "sh", "-c",
                         "exec " + train + " --peak-tflops 0.0$((RANK + 1))"});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output,
             Catch::Contains("MFU against 0.02 TFLOP/s per rank (--peak-tflops) x 2 ranks"));
  const auto rows = step_rows(metrics);
  REQUIRE(rows.size() == 3);
  for (const auto& row : rows) check_mfu(row, 2, 0.02);
}

TEST_CASE("a run resumes with another --peak-tflops and reports against the new one",
          "[cli][mfu]") {
  TempDir dir;
  const std::string metrics = (dir / "m.jsonl").string();
  const std::vector<std::string> run = {"--steps",   "4",    "--ckpt-dir", (dir / "ckpt").string(),
                                        "--metrics", metrics};
  auto first =
      run_conveyor(tiny_train(with(run, {"--exit-at-step", "2", "--peak-tflops", "0.01"})));
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  auto second = run_conveyor(tiny_train(with(run, {"--peak-tflops", "0.03"})));
  INFO(second.output);
  REQUIRE(second.exit_code == 0);
  CHECK_THAT(second.output, Catch::Contains("resumed from"));
  const auto rows = step_rows(metrics);
  REQUIRE(rows.size() == 4);
  for (int i = 0; i < 4; ++i) {
    CHECK(rows[i].at("step").get<int>() == i + 1);
    check_mfu(rows[i], 1, i < 2 ? 0.01 : 0.03);
  }
  // And without a peak at all: the rows it writes have none.
  auto third = run_conveyor(
      tiny_train({"--steps", "5", "--ckpt-dir", (dir / "ckpt").string(), "--metrics", metrics}));
  INFO(third.output);
  REQUIRE(third.exit_code == 0);
  const auto after = step_rows(metrics);
  REQUIRE(after.size() == 5);
  CHECK_FALSE(after.back().contains("mfu"));
}
