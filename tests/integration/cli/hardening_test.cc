// `conveyor train` against what hostile and unlucky users do: numbers that are not numbers,
// outputs that cannot be written, settings that mean nothing. Each fails at start-up with
// exit 2 and a message naming what to fix; a run that diverges stops naming the step.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/token_file.h"
#include "tests/test_util.h"

using namespace conveyor::test;

namespace {

std::vector<std::string> tiny(const std::vector<std::string>& more = {}) {
  std::vector<std::string> args = {
      "train", "--layers",      "2",  "--dim",          "16", "--heads",
      "2",     "--seq",         "16", "--microbatches", "2",  "--micro-batch-size",
      "2",     "--print-every", "0",  "--steps",        "3"};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

// Runs `args`; requires exit 2, `must_mention` in the output, and no training step.
void expect_refused(const std::vector<std::string>& args, const std::string& must_mention,
                    const std::vector<std::string>& env = {}) {
  auto r = run_conveyor(args, env, 60);
  std::string command;
  for (const auto& a : args) command += a + " ";
  INFO(command << "\n" << r.output);
  CHECK(r.exit_code == 2);
  CHECK(r.output.find(must_mention) != std::string::npos);
  CHECK(r.output.find("stage 0: at most") == std::string::npos);  // it did not train
}

// Every line of a metrics file is a JSON object (nlohmann rejects nan, inf and -nan).
std::vector<nlohmann::json> metrics_rows(const std::filesystem::path& path) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    INFO(line);
    REQUIRE(nlohmann::json::accept(line));
    rows.push_back(nlohmann::json::parse(line));
  }
  return rows;
}

}  // namespace

TEST_CASE("hyperparameters that are not finite or out of range exit 2", "[cli][hardening]") {
  expect_refused(tiny({"--lr", "inf"}), "--lr must be a positive number");
  expect_refused(tiny({"--lr", "1e30"}), "--lr must be a positive number");
  expect_refused(tiny({"--lr", "nan"}), "--lr must be a positive number");
  expect_refused(tiny({"--weight-decay", "inf"}), "--weight-decay must be a finite number");
  expect_refused(tiny({"--lr", "0.5", "--weight-decay", "2"}), "must be below 1");
  expect_refused(tiny({"--grad-clip", "nan"}), "--grad-clip must be a finite number");
  expect_refused(tiny({"--grad-clip", "-1"}), "--grad-clip must be a finite number");
  expect_refused(tiny({"--exit-at-step", "-1"}), "--exit-at-step: must be a whole number");
  expect_refused(tiny({"--exit-at-step", "0"}), "--exit-at-step: must be a whole number");
  expect_refused(tiny({"--seed", "-1"}), "--seed: must be a whole number, 0 or more");
  expect_refused(tiny({"--keep", "-2"}), "--keep must not be negative");
}

TEST_CASE("settings that would be silently ignored exit 2", "[cli][hardening]") {
  TempDir dir;
  expect_refused(tiny({"--async-save"}), "--async-save needs --ckpt-dir");
  expect_refused(tiny({"--eval-every", "2"}), "--eval-every 2 needs --val-data");
  write_file(dir / "help.toml", "help = true\n");
  expect_refused(tiny({"--config", (dir / "help.toml").string()}), "unknown setting 'help'");
  expect_refused(tiny(), "CONVEYOR_LOG='bogus' is not a log level", {"CONVEYOR_LOG=bogus"});

  auto r = run_conveyor({"trian", "--steps", "1"});
  INFO(r.output);
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("unknown command 'trian'") != std::string::npos);
  CHECK(r.output.find("train, eval, launch") != std::string::npos);
}

TEST_CASE("outputs that cannot be written fail before training", "[cli][hardening]") {
  TempDir dir;
  expect_refused(tiny({"--trace", (dir / "missing" / "t.json").string()}), "does not exist");
  expect_refused(tiny({"--trace", dir.str()}), "is a folder");
  expect_refused(tiny({"--metrics", dir.str()}), "is a folder");
  expect_refused(tiny({"--metrics", (dir / "no" / "m.jsonl").string()}), "does not exist");

  // A FIFO stands in for a device node: it is refused, and it is still a FIFO afterwards
  // (the trace is renamed into place, which would replace it with a regular file).
  const auto fifo = dir / "fifo.json";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  expect_refused(tiny({"--trace", fifo.string()}), "is not a regular file");
  CHECK(std::filesystem::is_fifo(fifo));
}

TEST_CASE("a step whose gradient is not finite stops the run naming the step", "[cli][hardening]") {
  TempDir dir;
  const auto metrics = dir / "m.jsonl";
  const auto ckpt = dir / "ckpt";
  auto r = run_conveyor(tiny({"--steps", "5", "--metrics", metrics.string(), "--ckpt-dir",
                              ckpt.string(), "--save-every", "1"}),
                        {"CONVEYOR_FAULT_NAN_GRADIENT=3"});
  INFO(r.output);
  REQUIRE(r.exit_code == 1);
  CHECK(r.output.find("step 3: the gradient norm is nan") != std::string::npos);
  // Steps 1 and 2 were reported and saved; the bad step neither.
  auto rows = metrics_rows(metrics);
  REQUIRE(rows.size() == 2);
  CHECK(rows.back()["step"] == 2);
  CHECK(read_file(ckpt / "LATEST").find("step_000000002") != std::string::npos);
  CHECK(!std::filesystem::exists(ckpt / "step_000000003"));
}

TEST_CASE("metrics rows carry time, tokens and validation loss", "[cli][hardening]") {
  TempDir dir;
  const auto metrics = dir / "m.jsonl";
  write_file(dir / "val.txt", std::string(2000, 'a') + "some held-out text\n");
  auto r =
      run_conveyor(tiny({"--steps", "4", "--metrics", metrics.string(), "--val-data",
                         (dir / "val.txt").string(), "--eval-every", "2", "--val-windows", "5"}));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto rows = metrics_rows(metrics);
  REQUIRE(rows.size() == 6);  // 4 steps, validation after steps 2 and 4
  int64_t tokens_per_step = 2 * 2 * 16;
  double last_elapsed = -1;
  for (const auto& row : rows) {
    INFO(row.dump());
    CHECK(row["elapsed_s"].get<double>() >= last_elapsed);
    last_elapsed = row["elapsed_s"].get<double>();
    CHECK(row["time"].get<double>() > 1.6e9);  // seconds since the epoch, not since start
    if (row.contains("val_loss")) {
      CHECK(row["step"].get<int>() % 2 == 0);
      CHECK(row["val_windows"] == 5);
      CHECK(row["val_loss"].get<double>() > 0);
    } else {
      CHECK(row["tokens"] == row["step"].get<int64_t>() * tokens_per_step);
    }
  }
  CHECK(rows[2].contains("val_loss"));
  CHECK(rows[5].contains("val_loss"));
}

TEST_CASE("train --print-config prints TOML that --config reads back", "[cli][hardening]") {
  TempDir dir;
  auto printed = run_conveyor(tiny({"--lr", "0.003", "--exit-at-step", "2", "--print-config"}));
  INFO(printed.output);
  REQUIRE(printed.exit_code == 0);
  CHECK(printed.output.find("lr = 0.003\n") != std::string::npos);
  CHECK(printed.output.find("exit_at_step = 2\n") != std::string::npos);
  CHECK(printed.output.find("ckpt_dir") == std::string::npos);  // not set: left out
  write_file(dir / "run.toml", printed.output);
  auto again = run_conveyor({"train", "--config", (dir / "run.toml").string(), "--print-config"});
  CHECK(again.exit_code == 0);
  CHECK(again.output == printed.output);
}

TEST_CASE("every checkpoint stores the run's settings, and they train again as given",
          "[cli][hardening][checkpoint]") {
  TempDir dir;
  const auto ckpt = dir / "ckpt";
  const auto flags = tiny({"--lr", "0.003", "--ckpt-dir", ckpt.string(), "--save-every", "2"});
  auto printed = run_conveyor([&] {
    auto a = flags;
    a.push_back("--print-config");
    return a;
  }());
  REQUIRE(printed.exit_code == 0);
  auto trained = run_conveyor(flags);
  INFO(trained.output);
  REQUIRE(trained.exit_code == 0);

  for (const auto& step : {"step_000000002", "step_000000003"}) {
    auto saved = run_conveyor({"ckpt", "settings", (ckpt / step).string()});
    INFO(saved.output);
    REQUIRE(saved.exit_code == 0);
    // The same TOML as --print-config, under a header comment naming the checkpoint.
    const std::string body = saved.output.substr(saved.output.find('\n') + 1);
    const std::string printed_body = printed.output.substr(printed.output.find('\n') + 1);
    CHECK(body == printed_body);
    write_file(dir / "saved.toml", saved.output);
    auto again =
        run_conveyor({"train", "--config", (dir / "saved.toml").string(), "--print-config"});
    CHECK(again.output == printed.output);
  }
  auto inspect = run_conveyor({"ckpt", "inspect", ckpt.string()});
  CHECK_THAT(inspect.output, Catch::Contains("settings: saved"));
}

TEST_CASE("a run that fails leaves a trace of every step it finished", "[cli][hardening]") {
  TempDir dir;
  const auto trace = dir / "trace.json";
  auto r = run_conveyor(tiny({"--steps", "5", "--trace", trace.string()}),
                        {"CONVEYOR_FAULT_NAN_GRADIENT=3"});
  INFO(r.output);
  REQUIRE(r.exit_code == 1);
  CHECK(!std::filesystem::exists(trace));
  // The rank's part is Chrome's JSON Array Format, which viewers read without its closing
  // bracket: close it here to parse it.
  std::string text = read_file(dir / "trace.rank-0.json");
  REQUIRE(text.rfind("[\n", 0) == 0);
  REQUIRE(text.size() > 3);
  text.resize(text.find_last_not_of(",\n") + 1);
  const auto events = nlohmann::json::parse(text + "]");
  int forwards = 0;
  for (const auto& e : events) forwards += e.value("name", "").rfind("F", 0) == 0;
  // Two finished steps of two micro-batches each; step 3 failed after its schedule ran.
  CHECK(forwards >= 4);

  // A run that ends cleanly leaves the merged trace only.
  const auto clean = dir / "clean.json";
  auto ok = run_conveyor(tiny({"--trace", clean.string()}));
  REQUIRE(ok.exit_code == 0);
  CHECK(nlohmann::json::parse(read_file(clean)).contains("traceEvents"));
  CHECK(!std::filesystem::exists(dir / "clean.rank-0.json"));
}

TEST_CASE("sizes too large for this host exit 2 stating need and available", "[cli][hardening]") {
  expect_refused(tiny({"--dim", "1000000", "--heads", "1"}), "this stage needs about");
  expect_refused(tiny({"--dim", "1000000", "--heads", "1"}), "available");
  expect_refused(tiny({"--seq", "2000000000"}), "tokens per micro-batch");
  expect_refused(tiny({"--micro-batch-size", "1000000000"}), "tokens per micro-batch");
  expect_refused(tiny({"--micro-batch-size", "100000", "--seq", "1000"}), "this stage needs about");
  expect_refused(tiny({"--threads", "100000"}), "cores of this host");
}

TEST_CASE("a data file larger than memory is mapped, not read in", "[cli][hardening]") {
  TempDir dir;
  // 64 GiB of zero bytes (a sparse file: nothing is written to disk) is more than this
  // machine's memory; reading it into a buffer would fail.
  const auto big = dir / "big.txt";
  { std::ofstream out(big); }
  std::filesystem::resize_file(big, uint64_t{64} << 30);
  auto r = run_conveyor(tiny({"--steps", "1", "--data", big.string()}));
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("68.7 GB") != std::string::npos);  // the description names its size
}

TEST_CASE("eval names the checkpoint's vocabulary, not a flag it does not have",
          "[cli][hardening]") {
  TempDir dir;
  const auto ckpt = dir / "ckpt";
  auto trained = run_conveyor(tiny({"--steps", "1", "--ckpt-dir", ckpt.string()}));
  REQUIRE(trained.exit_code == 0);
  conveyor::data::write_token_file((dir / "gpt2.bin").string(), std::vector<uint16_t>(40, 300));
  auto r = run_conveyor({"eval", "--ckpt", ckpt.string(), "--data", (dir / "gpt2.bin").string()});
  INFO(r.output);
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("is >= the checkpoint's vocabulary 256") != std::string::npos);
  CHECK(r.output.find("--vocab") == std::string::npos);
}
