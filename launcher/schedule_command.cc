// `conveyor schedule`: builds a pipeline schedule, validates it by simulation, and prints
// the step grid, the bubble fraction and the activation memory per stage. Pure: no model,
// no transport, no processes. Exit 2 on invalid parameters (pipeline::make_schedule's
// messages say how to fix them).
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "common/error.h"
#include "launcher/cli_number.h"
#include "launcher/commands.h"
#include "launcher/partition_costs.h"
#include "pipeline/runtime/message_tag.h"
#include "pipeline/runtime/trace.h"
#include "pipeline/schedule/schedule.h"
#include "pipeline/schedule/schedule_grid.h"
#include "pipeline/schedule/schedule_validator.h"

namespace conveyor::cli {
namespace {

// The costs' range, in time units: twelve decades of ratio between the fastest and the
// slowest op, and small enough that the makespan of the largest schedule (256 pipeline
// pieces x 65535 micro-batches x 3 ops) times the stages stays far from overflowing a
// double, so the bubble is always a number.
constexpr double kMinCost = 1e-6;
constexpr double kMaxCost = 1e6;

// What the printed grid may hold: it has a cell per stage and time unit (the shortest op),
// and the simulation a record per action. Train's caps alone would still allow a grid of
// gigabytes (256 stages x 65535 micro-batches), so the display has its own bounds.
constexpr int64_t kMaxPasses = int64_t{1} << 21;  // stages x virtual stages x micro-batches
constexpr double kMaxGridCells = double(int64_t{1} << 23);

struct ScheduleOptions {
  int stages = 4;
  int microbatches = 8;
  std::string schedule = "1f1b";
  int virtual_stages = 0;  // 0 = not given: 2 for interleaved, else 1
  int warmup_per_hop = 1;
  double f_cost = 1, b_cost = 1, w_cost = 1;
  std::string trace;
  PartitionOptions partition;  // --partition and the model shape its costs need
};

int run_schedule(const ScheduleOptions& o) {
  using namespace pipeline;
  const ScheduleKind kind = parse_schedule_kind(o.schedule);
  const int v = o.virtual_stages > 0 ? o.virtual_stages : default_virtual_stages(kind);
  const Costs costs{o.f_cost, o.b_cost, o.w_cost};
  // The caps of `conveyor train` (TrainConfig::validate): the message tags' limits.
  CONVEYOR_REQUIRE(int64_t(o.stages) * v <= kMaxTagVirtualStages,
                   "--stages {} x --virtual-stages {} is more than the {} pipeline pieces a job "
                   "can have",
                   o.stages, v, kMaxTagVirtualStages);
  const int64_t passes = int64_t(o.stages) * v * o.microbatches;
  CONVEYOR_REQUIRE(passes <= kMaxPasses,
                   "--stages {} x --virtual-stages {} x --microbatches {} = {} micro-batch passes "
                   "is more than the {} a schedule can show; use fewer stages or micro-batches",
                   o.stages, v, o.microbatches, passes, kMaxPasses);
  const Schedule s = make_schedule(kind, o.stages, o.microbatches, v, o.warmup_per_hop);
  // Resolved before anything is printed: a partition train would refuse exits 2 alone.
  const std::string partition_costs = render_partition_costs(o.partition, s.layout());
  const SimulationResult r = validate_schedule(s, costs);
  // The grid's columns: the makespan in units of the shortest op (as render_grid draws it).
  double unit = 0;
  for (const auto& stage : r.times)
    for (const auto& t : stage)
      if (t.end > t.start && (unit == 0 || t.end - t.start < unit)) unit = t.end - t.start;
  const double cells = s.stages * (unit > 0 ? r.makespan / unit : r.makespan);
  CONVEYOR_REQUIRE(cells <= kMaxGridCells,
                   "the grid would have {:.3g} cells ({} stages x a makespan of {:g} in units of "
                   "the shortest op, {:g}), more than the {:g} it can show; bring --f-cost, "
                   "--b-cost and --w-cost closer together, or use fewer micro-batches",
                   cells, s.stages, r.makespan, unit, kMaxGridCells);

  std::printf(
      "schedule %s: %d stages, %d micro-batches, %d virtual stage%s per stage%s; "
      "costs F %g, B %g, W %g (BW %g)\n\n",
      to_string(kind).c_str(), s.stages, s.microbatches, v, v == 1 ? "" : "s",
      s.warmup_per_hop == 1 ? "" : fmt::format(", warm-up {} per hop", s.warmup_per_hop).c_str(),
      costs.f, costs.b, costs.w, costs.of(Op::kBackward));
  std::printf("%s\n", render_grid(s, r).c_str());
  const std::optional<double> theory = theoretical_bubble(kind, s.stages, s.microbatches, v, costs);
  std::printf("makespan %g, bubble %.4f (%s)\n", r.makespan, r.bubble,
              theory ? fmt::format("theory {:.4f}", *theory).c_str() : "no closed form");
  std::printf("%-8s %14s %7s %10s %8s\n", "stage", "peak in-flight", "bound", "pending W", "busy");
  for (int st = 0; st < s.stages; ++st) {
    std::printf("%-8d %14d %7d %10d %8g\n", st, r.peak_inflight[st], s.max_inflight(st),
                r.peak_pending_weight[st], r.busy[st]);
  }
  std::printf("%s", partition_costs.c_str());
  if (!o.trace.empty()) {
    write_chrome_trace(o.trace, simulation_spans(s, r));
    std::printf("trace written to %s (1 time unit = 1 ms)\n", o.trace.c_str());
  }
  return kExitOk;
}

}  // namespace

void add_schedule(CLI::App& app, Runner& run) {
  using pipeline::kMaxTagMicrobatches;
  using pipeline::kMaxTagVirtualStages;
  auto opts = std::make_shared<ScheduleOptions>();
  auto* sub = app.add_subcommand(
      "schedule", "Show a pipeline schedule: step x stage grid, bubble, activation memory");
  // Capped as `conveyor train` caps them (pipeline/runtime/message_tag.h); uncapped, the schedule's
  // time and memory grow with stages x micro-batches.
  sub->add_option("--stages", opts->stages, "pipeline stages p")
      ->capture_default_str()
      ->transform(integer_in(1, kMaxTagVirtualStages, "stages"));
  sub->add_option("--microbatches", opts->microbatches, "micro-batches per step m")
      ->capture_default_str()
      ->transform(integer_in(1, kMaxTagMicrobatches - 1, "micro-batches"));
  sub->add_option("--schedule", opts->schedule, "one of " + pipeline::schedule_kind_names())
      ->capture_default_str();
  sub->add_option("--virtual-stages", opts->virtual_stages,
                  "model chunks per stage v (default: 2 for interleaved, zb-v and dualpipe-v, "
                  "else 1)")
      ->transform(integer_in(0, kMaxTagVirtualStages, "virtual stages"));
  sub->add_option("--warmup-per-hop", opts->warmup_per_hop,
                  "1f1b, zb-h1: stage s runs K*(stages-1-s) warm-up forwards (1: textbook)")
      ->capture_default_str()
      ->transform(integer_in(1, kMaxTagMicrobatches - 1, "warm-up forwards per hop"));
  const auto cost = real_in(kMinCost, kMaxCost, "time units");
  sub->add_option("--f-cost", opts->f_cost, "time of one forward (F)")
      ->capture_default_str()
      ->transform(cost);
  sub->add_option("--b-cost", opts->b_cost, "time of one input-gradient backward (B)")
      ->capture_default_str()
      ->transform(cost);
  sub->add_option("--w-cost", opts->w_cost,
                  "time of one weight-gradient backward (W); BW costs B + W")
      ->capture_default_str()
      ->transform(cost);
  sub->add_option("--trace", opts->trace, "also write the simulated timeline as a Chrome trace");
  add_partition_options(*sub, opts->partition);
  sub->callback([&run, opts] { run = [opts] { return run_schedule(*opts); }; });
}

}  // namespace conveyor::cli
