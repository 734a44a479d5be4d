#include "bench/bench_schedule.h"

#include <unistd.h>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/stats.h"
#include "launcher/launch/supervisor.h"
#include "pipeline/schedule/schedule.h"
#include "pipeline/schedule/schedule_validator.h"

namespace conveyor::cli {

namespace {

struct Options {
  int stages = 4;
  int microbatches = 8;
  std::string schedule = "1f1b";
  int virtual_stages = 0;  // 0: 2 for interleaved, else 1
  double f_ms = 10, b_ms = 10, w_ms = 10;
  int steps = 6;
};

int run_bench_schedule(Options o) {
  const auto kind = pipeline::parse_schedule_kind(o.schedule);
  if (o.virtual_stages == 0) o.virtual_stages = pipeline::default_virtual_stages(kind);
  CONVEYOR_REQUIRE(o.f_ms >= 0 && o.b_ms >= 0 && o.w_ms >= 0,
                   "--f-ms, --b-ms and --w-ms must not be negative");
  CONVEYOR_REQUIRE(o.steps >= 3, "--steps must be at least 3 (the first two are warm-up)");
  // Validates p, m, v with the same messages as training.
  const pipeline::Schedule schedule =
      pipeline::make_schedule(kind, o.stages, o.microbatches, o.virtual_stages);

  const auto metrics = std::filesystem::temp_directory_path() /
                       fmt::format("conveyor-bench-schedule-{}.jsonl", getpid());
  std::filesystem::remove(metrics);
  LaunchOptions launch;
  launch.nproc = o.stages;
  launch.quiet = true;
  // A tiny real model (one layer per piece) whose compute is negligible next to the sleeps.
  launch.command = {"conveyor",
                    "train",
                    "--stages",
                    std::to_string(o.stages),
                    "--microbatches",
                    std::to_string(o.microbatches),
                    "--schedule",
                    o.schedule,
                    "--virtual-stages",
                    std::to_string(o.virtual_stages),
                    "--layers",
                    std::to_string(o.stages * o.virtual_stages),
                    "--dim",
                    "8",
                    "--heads",
                    "1",
                    "--seq",
                    "8",
                    "--micro-batch-size",
                    "1",
                    "--threads",
                    "1",
                    "--steps",
                    std::to_string(o.steps),
                    "--print-every",
                    "0",
                    "--metrics",
                    metrics.string(),
                    "--sleep-f-ms",
                    fmt::format("{}", o.f_ms),
                    "--sleep-b-ms",
                    fmt::format("{}", o.b_ms),
                    "--sleep-w-ms",
                    fmt::format("{}", o.w_ms)};
  const int code = run_supervisor(launch);
  if (code != 0) {
    std::filesystem::remove(metrics);
    throw Error(ErrorKind::kRuntime,
                fmt::format("bench schedule: the stages failed (exit {})", code));
  }
  std::vector<double> bubble, step_ms;
  std::ifstream in(metrics);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    if (++n <= 2) continue;  // warm-up: endpoints, pools
    auto j = nlohmann::json::parse(line);
    bubble.push_back(j["bubble"].get<double>());
    step_ms.push_back(j["step_ms"].get<double>());
  }
  std::filesystem::remove(metrics);
  pipeline::Costs costs{o.f_ms, o.b_ms, o.w_ms};
  const std::optional<double> theory =
      pipeline::theoretical_bubble(kind, o.stages, o.microbatches, o.virtual_stages, costs);
  const double simulated = pipeline::validate_schedule(schedule, costs).bubble;
  nlohmann::ordered_json out = {
      {"schedule", pipeline::to_string(kind)},
      {"stages", o.stages},
      {"microbatches", o.microbatches},
      {"virtual_stages", o.virtual_stages},
      {"bubble_measured", median(bubble)},
      {"bubble_simulated", simulated},
      {"bubble_theory", theory ? nlohmann::json(*theory) : nlohmann::json()},
      {"step_ms", median(step_ms)}};
  std::printf("%s\n", out.dump().c_str());
  return kExitOk;
}

}  // namespace

void add_bench_schedule(CLI::App& bench, BenchRunner& run) {
  auto o = std::make_shared<Options>();
  auto* s = bench.add_subcommand(
      "schedule", "measure a schedule's bubble with P processes and simulated compute");
  s->add_option("--stages", o->stages)->capture_default_str();
  s->add_option("--microbatches", o->microbatches)->capture_default_str();
  s->add_option("--schedule", o->schedule)->capture_default_str();
  s->add_option("--virtual-stages", o->virtual_stages,
                "0: 2 for interleaved, zb-v and dualpipe-v, else 1")
      ->capture_default_str();
  s->add_option("--f-ms", o->f_ms, "simulated forward time per micro-batch")->capture_default_str();
  s->add_option("--b-ms", o->b_ms, "simulated input-gradient time")->capture_default_str();
  s->add_option("--w-ms", o->w_ms, "simulated weight-gradient time")->capture_default_str();
  s->add_option("--steps", o->steps, "steps to run (the first two are not measured)")
      ->capture_default_str();
  s->callback([&run, o] { run = [o] { return run_bench_schedule(*o); }; });
}

}  // namespace conveyor::cli
