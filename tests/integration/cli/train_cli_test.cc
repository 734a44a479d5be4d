// `conveyor train` end to end, one stage: bad input gives exit 2 with a useful message,
// training is deterministic, the loss goes down, and --config works.
#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>

#include "data/token_file.h"
#include "tests/test_util.h"

using conveyor::test::read_file;
using conveyor::test::run_conveyor;
using conveyor::test::TempDir;
using conveyor::test::write_file;

namespace {

// A tiny model that trains in well under a second a step.
std::vector<std::string> tiny_args() {
  return {"train", "--layers",      "2",  "--dim",          "16", "--heads",
          "2",     "--seq",         "16", "--microbatches", "2",  "--micro-batch-size",
          "2",     "--print-every", "0"};
}

std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

std::vector<std::string> losses(const std::string& metrics_path) {
  std::vector<std::string> out;
  std::ifstream in(metrics_path);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    // The raw text of the loss: %.9g round-trips the float, so equal text = equal bits.
    auto at = line.find("\"loss\": ");
    out.push_back(line.substr(at + 8, line.find(',', at) - at - 8));
    REQUIRE(j.contains("step"));
    REQUIRE(j.contains("lr"));
    REQUIRE(j.contains("grad_norm"));
    REQUIRE(j.contains("tokens_per_s"));
    REQUIRE(j.contains("step_ms"));
    REQUIRE(j.contains("bubble"));
  }
  return out;
}

void expect_usage_error(const std::vector<std::string>& args, const std::string& must_mention) {
  auto r = run_conveyor(args);
  INFO(r.output);
  REQUIRE(r.exit_code == 2);
  REQUIRE(r.output.find(must_mention) != std::string::npos);
}

}  // namespace

TEST_CASE("bad input to train exits 2 with a message saying what to fix", "[cli]") {
  TempDir dir;
  const auto empty = dir / "empty.txt";
  write_file(empty, "");
  const auto small = dir / "small.txt";
  write_file(small, "only a few bytes");
  const auto bad_bin = dir / "bad.bin";
  write_file(bad_bin, std::string(1024, 'x'));
  const auto big_token = dir / "big.bin";
  conveyor::data::write_token_file(big_token.string(), {1, 2, 300, 4, 5, 6, 7, 8});
  const auto bad_toml = dir / "bad.toml";
  write_file(bad_toml, "layers = = 3\n");
  const auto unknown_toml = dir / "unknown.toml";
  write_file(unknown_toml, "layerz = 3\n");
  const auto type_toml = dir / "type.toml";
  write_file(type_toml, "seed = 3\nsteps = \"four\"\n");

  expect_usage_error(with(tiny_args(), {"--data", (dir / "missing").string()}), "missing");
  expect_usage_error(with(tiny_args(), {"--data", empty.string()}), "empty.txt");
  expect_usage_error(with(tiny_args(), {"--data", bad_bin.string()}), "bad.bin");
  expect_usage_error(with(tiny_args(), {"--data", big_token.string()}), "300");
  expect_usage_error(with(tiny_args(), {"--dim", "15"}), "--heads");
  expect_usage_error(with(tiny_args(), {"--data", small.string()}), "--seq");
  expect_usage_error(with(tiny_args(), {"--no-such-flag"}), "no-such-flag");
  expect_usage_error(with(tiny_args(), {"--config", bad_toml.string()}), "line 1");
  expect_usage_error(with(tiny_args(), {"--config", unknown_toml.string()}), "layerz");
  expect_usage_error(with(tiny_args(), {"--config", unknown_toml.string()}),
                     "unknown.toml, line 1, column 1");
  expect_usage_error(with(tiny_args(), {"--config", type_toml.string()}),
                     "type.toml, line 2, column 9: bad value 'four' for 'steps'");
  expect_usage_error(with(tiny_args(), {"--config", (dir / "none.toml").string()}), "none.toml");
}

TEST_CASE("two identical runs give bit-identical losses", "[cli]") {
  TempDir dir;
  auto a = run_conveyor(with(tiny_args(), {"--steps", "6", "--metrics", (dir / "a").string()}));
  auto b = run_conveyor(with(tiny_args(), {"--steps", "6", "--metrics", (dir / "b").string()}));
  INFO(a.output << b.output);
  REQUIRE(a.exit_code == 0);
  REQUIRE(b.exit_code == 0);
  auto la = losses((dir / "a").string());
  REQUIRE(la.size() == 6);
  REQUIRE(la == losses((dir / "b").string()));
  // A different seed is a different run.
  auto c = run_conveyor(
      with(tiny_args(), {"--steps", "6", "--seed", "2", "--metrics", (dir / "c").string()}));
  REQUIRE(c.exit_code == 0);
  REQUIRE(losses((dir / "c").string()) != la);
}

TEST_CASE("training a tiny model on the default corpus lowers the loss", "[cli]") {
  TempDir dir;
  auto r = run_conveyor(
      with(tiny_args(), {"--steps", "60", "--lr", "1e-2", "--warmup", "5", "--micro-batch-size",
                         "8", "--sample", "20", "--metrics", (dir / "m").string()}));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  auto l = losses((dir / "m").string());
  REQUIRE(l.size() == 60);
  const double first = std::stod(l.front()), last = std::stod(l.back());
  REQUIRE(first > 5.0);  // about ln(256) = 5.55 at the start
  REQUIRE(last < first - 1.5);
  REQUIRE(r.output.find("--- sample (20 characters) ---") != std::string::npos);
}

TEST_CASE("a TOML config file sets flags and the command line wins", "[cli]") {
  TempDir dir;
  const auto cfg = dir / "run.toml";
  write_file(cfg, "steps = 3\nmicro_batch_size = 2\nseed = 5\nmetrics = \"" +
                      (dir / "from_file.jsonl").string() + "\"\n");
  auto r = run_conveyor(with(tiny_args(), {"--config", cfg.string()}));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  REQUIRE(losses((dir / "from_file.jsonl").string()).size() == 3);
  auto r2 = run_conveyor(with(tiny_args(), {"--config", cfg.string(), "--steps", "2", "--metrics",
                                            (dir / "from_flags.jsonl").string()}));
  REQUIRE(r2.exit_code == 0);
  REQUIRE(losses((dir / "from_flags.jsonl").string()).size() == 2);
}
