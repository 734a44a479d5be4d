// One way to read a number (common/checked_number.h, launcher/cli_number.h): the durations,
// sizes and counts of `launch`, `schedule` and `train`, given as flags or in a TOML file, are
// finite and in range or refused at start-up with exit 2, a message naming the flag, the
// text, the unit and the range, and nothing started.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "tests/test_util.h"

using namespace conveyor::test;

namespace {

std::string joined(const std::vector<std::string>& args) {
  std::string out;
  for (const auto& a : args) out += a + " ";
  return out;
}

// Runs `args`; requires exit 2 and `mention` in the output, and that `marker` (which the
// command would print had it started) is not there.
void expect_refused(const std::vector<std::string>& args, const std::string& mention,
                    const std::string& marker = "RANK-STARTED") {
  auto r = run_conveyor(args, {}, 60);
  INFO(joined(args) << "\n" << r.output);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains(mention));
  CHECK(r.output.find(marker) == std::string::npos);
}

// `conveyor launch FLAGS -- sh -c 'echo RANK-STARTED'`: a rank that starts says so.
std::vector<std::string> launch(const std::vector<std::string>& flags) {
  auto args = with({"launch"}, flags);
  args.insert(args.end(), {"--", "sh", "-c", "echo RANK-STARTED"});
  return args;
}

std::vector<std::string> tiny_train(const std::vector<std::string>& more = {}) {
  return with({"train", "--dim", "16", "--heads", "2", "--seq", "16", "--microbatches", "2",
               "--micro-batch-size", "2", "--print-every", "0"},
              more);
}

}  // namespace

TEST_CASE("launch refuses a grace or stop timeout that is not a number of seconds in range",
          "[cli][numbers]") {
  // nan, inf and huge values overflowed the conversion to milliseconds: the ranks were
  // SIGKILLed right after SIGTERM and the preemption checkpoint was lost.
  for (const char* flag : {"--grace", "--stop-timeout"}) {
    for (const char* bad : {"nan", "inf", "-inf", "-1", "1e300", "3000000", "604801", "5s", ""}) {
      expect_refused(
          launch({"--nproc", "1", flag, bad}),
          std::string(flag) + ": '" + bad + "' is not a number of seconds in [0, 604800]");
    }
  }
  // The longest allowed timeouts start the job.
  auto r = run_conveyor(launch({"--nproc", "1", "--grace", "604800", "--stop-timeout", "604800"}),
                        {}, 60);
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("RANK-STARTED"));
}

TEST_CASE("launch --nproc is bounded by the largest job there can be", "[cli][numbers]") {
  // Without a bound, launch forked until it ran out of descriptors or processes. The limit
  // on descriptors keeps a launch that does not refuse from forking thousands.
  const std::string command = "ulimit -n 64; exec " + shell_quoted(CONVEYOR_BIN) + " " +
                              shell_command(launch({"--nproc", "16384"}));
  auto r = run_program({"sh", "-c", command}, {}, 60);
  INFO(r.output);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("--nproc: '16384' is not a number of ranks in [1, 16383]"));
  CHECK(r.output.find("RANK-STARTED") == std::string::npos);
  for (const char* bad : {"1e9", "-3", "2.5", "0x10", "99999999999999999999"})
    expect_refused(launch({"--nproc", bad}), std::string("--nproc: '") + bad + "'");
}

TEST_CASE("schedule caps stages and micro-batches as train does", "[cli][numbers]") {
  // Uncapped, the schedule's time and memory grew with stages x micro-batches without end.
  expect_refused({"schedule", "--stages", "257"},
                 "--stages: '257' is not a number of stages in [1, 256]", "bubble ");
  expect_refused({"schedule", "--stages", "1", "--microbatches", "65536"},
                 "--microbatches: '65536' is not a number of micro-batches in [1, 65535]",
                 "bubble ");
  expect_refused({"schedule", "--schedule", "interleaved", "--stages", "64", "--virtual-stages",
                  "8", "--microbatches", "64"},
                 "--stages 64 x --virtual-stages 8 is more than the 256 pipeline pieces",
                 "bubble ");
  expect_refused({"schedule", "--stages", "1e9"}, "--stages: '1e9'", "bubble ");
  // Within train's caps, the grid still has its own bound (it would take gigabytes).
  expect_refused({"schedule", "--stages", "256", "--microbatches", "65535"},
                 "--stages 256 x --virtual-stages 1 x --microbatches 65535 = 16776960 micro-batch "
                 "passes is more than the 2097152 a schedule can show",
                 "bubble ");
  // Decimal, never octal: 010 stages are ten.
  auto r = run_conveyor({"schedule", "--stages", "010", "--microbatches", "10"}, {}, 60);
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("10 stages, 10 micro-batches"));
}

TEST_CASE("schedule costs are bounded so the bubble stays a number", "[cli][numbers]") {
  // Costs of 1e308 overflowed the makespan to inf and printed a bubble of -nan.
  for (const char* flag : {"--f-cost", "--b-cost", "--w-cost"}) {
    for (const char* bad : {"1e308", "inf", "nan", "0", "-1", "1e-300"})
      expect_refused({"schedule", flag, bad},
                     std::string(flag) + ": '" + bad + "' is not a number of time units in [",
                     "bubble ");
  }
  // The extremes allowed still give finite numbers.
  for (const char* cost : {"1e6", "1e-6"}) {
    auto r = run_conveyor({"schedule", "--schedule", "zb-h1", "--stages", "4", "--microbatches",
                           "8", "--f-cost", cost, "--b-cost", cost, "--w-cost", cost},
                          {}, 60);
    INFO(r.output);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.output, Catch::Contains("bubble 0."));
    CHECK(r.output.find("nan") == std::string::npos);
    CHECK(r.output.find("inf") == std::string::npos);
  }
  // Costs far apart made a grid column per shortest op: billions of cells, then a crash.
  expect_refused({"schedule", "--f-cost", "1e6", "--w-cost", "1e-6"},
                 "bring --f-cost, --b-cost and --w-cost closer together", "bubble ");
}

TEST_CASE("train --seed above 2^64 - 1 is refused, not clamped", "[cli][numbers]") {
  expect_refused(tiny_train({"--seed", "18446744073709551616", "--print-config"}),
                 "--seed: '18446744073709551616' is not a whole number",
                 "# conveyor train settings");
  expect_refused(tiny_train({"--seed", "99999999999999999999999", "--print-config"}),
                 "--seed: '99999999999999999999999'", "# conveyor train settings");
  // What users relied on stays: the largest seed, and the old message for a negative one.
  auto r = run_conveyor(tiny_train({"--seed", "18446744073709551615", "--print-config"}), {}, 60);
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("seed = 18446744073709551615\n"));
  expect_refused(tiny_train({"--seed", "-1"}), "--seed: must be a whole number, 0 or more");
}

TEST_CASE("train's simulated compute times are bounded durations", "[cli][numbers]") {
  // --sleep-f-ms inf slept forever (or for an overflowed duration).
  for (const char* flag : {"--sleep-f-ms", "--sleep-b-ms", "--sleep-w-ms"}) {
    for (const char* bad : {"inf", "nan", "-1", "1e300"})
      expect_refused(tiny_train({flag, bad, "--print-config"}),
                     std::string(flag) + " '" + bad + "' is not a number of milliseconds in [0, ",
                     "# conveyor train settings");
  }
}

TEST_CASE("a TOML string with a NUL byte is refused, naming file, line and key", "[cli][numbers]") {
  TempDir dir;
  write_file(dir / "data.txt", std::string(3000, 'a'));
  // toml++ reads \u0000 into the string; the C path it became ended at the NUL, so
  // "data.txt\u0000.ignored" trained on data.txt.
  const auto config = dir / "run.toml";
  write_file(config, "steps = 1\nlayers = 2\ndata = \"" + (dir / "data.txt").string() +
                         "\\u0000.ignored\"\n");
  auto r = run_conveyor(tiny_train({"--config", config.string()}), {}, 60);
  INFO(r.output);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("config file " + config.string() + ", line 3"));
  CHECK_THAT(r.output, Catch::Contains("'data' holds a NUL byte"));
  CHECK(r.output.find("stage 0: at most") == std::string::npos);  // it did not train
}

TEST_CASE("TOML numbers for flags are checked: whole where whole, finite, in range",
          "[cli][numbers]") {
  TempDir dir;
  auto refused = [&](const std::string& toml, const std::string& mention) {
    const auto config = dir / "run.toml";
    write_file(config, "steps = 1\n" + toml + "\n");
    expect_refused(tiny_train({"--config", config.string(), "--print-config"}), mention,
                   "# conveyor train settings");
  };
  // A float where a whole number belongs was rounded through its text ("2.0" read as 2).
  refused("layers = 2.0", "line 2, column 10: 'layers' must be a whole number (got 2.0)");
  refused("layers = 2.5", "'layers' must be a whole number (got 2.5)");
  refused("seed = 1e3", "'seed' must be a whole number (got 1000.0)");
  // Too large for any integer: toml++ would convert it (undefined behaviour) if asked.
  refused("layers = 6e93", "'layers' must be a whole number (got 6e+93)");
  refused("layers = 4294967298", "'layers'");
  refused("lr = nan", "line 2, column 6: 'lr' must be a finite number (got nan)");
  refused("bucket_mb = inf", "'bucket_mb' must be a finite number (got inf)");
  refused("sleep_f_ms = 1e300", "'sleep_f_ms'");
  // Whole numbers and finite reals still work.
  write_file(dir / "ok.toml", "steps = 1\nlayers = 2\nlr = 0.002\nbucket_mb = 2.5\n");
  auto r = run_conveyor(tiny_train({"--config", (dir / "ok.toml").string(), "--print-config"}));
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("layers = 2\n"));
  CHECK_THAT(r.output, Catch::Contains("bucket_mb = 2.5\n"));
}

TEST_CASE("train's whole-number flags are read in decimal", "[cli][numbers]") {
  auto r = run_conveyor({"train", "--layers", "010", "--print-config"});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("layers = 10\n") != std::string::npos);  // not octal 8
  r = run_conveyor({"train", "--layers", "0x10", "--print-config"});
  INFO(r.output);
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("'0x10' is not a whole number in decimal") != std::string::npos);
}

TEST_CASE("train --peak-tflops is a positive, finite number of TFLOP/s", "[cli][numbers]") {
  // 0 or a negative peak would divide by zero or report a negative utilisation; nan and inf
  // would write null in every row.
  for (const char* bad : {"0", "-1", "-0", "nan", "inf", "1e6", "1e-9", "fast", "67TF", ""}) {
    expect_refused(
        tiny_train({"--peak-tflops", bad, "--print-config"}),
        std::string("--peak-tflops: '") + bad + "' is not a number of TFLOP/s in [0.001, 100000]",
        "# conveyor train settings");
  }
  TempDir dir;
  write_file(dir / "zero.toml", "peak_tflops = 0\n");
  expect_refused(tiny_train({"--config", (dir / "zero.toml").string(), "--print-config"}),
                 "'peak_tflops': --peak-tflops: '0' is not a number of TFLOP/s",
                 "# conveyor train settings");
  // A valid peak, from a flag or a TOML integer, is kept as given.
  auto r = run_conveyor(tiny_train({"--peak-tflops", "0.186", "--print-config"}), {}, 60);
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("peak_tflops = 0.186\n"));
  write_file(dir / "h100.toml", "peak_tflops = 67\n");
  r = run_conveyor(tiny_train({"--config", (dir / "h100.toml").string(), "--print-config"}), {},
                   60);
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("peak_tflops = 67\n"));
}
