// Data parallelism (docs/PARALLELISM.md): R replicas of a P-stage pipeline train the same
// global batch as one pipeline with R times the micro-batches; the gradient all-reduce sums in
// a fixed order (the same bits run to run, with or without ZeRO-1, for any stage count);
// checkpoints resume onto another replicas x stages grid; a replica that dies mid-all-reduce
// is named and ends the job.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <csignal>
#include <map>
#include <nlohmann/json.hpp>

#include "common/file_io.h"
#include "tests/integration/pipeline/pipeline_test_util.h"

using namespace conveyor::test;

namespace {

constexpr int kSteps = 50;

// The tiny model with `microbatches` per replica.
std::vector<std::string> tiny_args(int microbatches, int steps = kSteps) {
  return with(tiny_model_args({.layers = 4, .microbatches = microbatches, .micro_batch_size = 2}),
              {"--steps", std::to_string(steps)});
}

// `conveyor train` on a replicas x stages grid (under launch when it has several ranks).
RunResult train_grid(int replicas, int stages, const std::vector<std::string>& args,
                     const std::vector<std::string>& env = {}) {
  const int world = replicas * stages;
  std::vector<std::string> argv;
  if (world > 1) argv = {"launch", "--nproc", std::to_string(world), "--", "conveyor"};
  argv.push_back("train");
  argv = with(with(argv, args),
              {"--stages", std::to_string(stages), "--replicas", std::to_string(replicas)});
  return run_conveyor(argv, env, 180);
}

std::vector<double> losses(const std::string& metrics_path) {
  std::vector<double> out;
  for (const auto& text : loss_texts(metrics_path)) out.push_back(std::stod(text));
  return out;
}

// Largest |a - b| / |b| over the steps both have; fails when the lengths differ.
double max_relative_difference(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::abs(a[i] - b[i]) / std::abs(b[i]));
  return worst;
}

}  // namespace

TEST_CASE("2 replicas x 2 stages train the global batch of 1 pipeline with twice the micro-batches",
          "[pipeline]") {
  TempDir dir;
  const auto one_path = (dir / "r1.jsonl").string();
  auto one = train_grid(1, 2, with(tiny_args(4), {"--metrics", one_path}));
  INFO(one.output);
  REQUIRE(one.exit_code == 0);
  const auto reference = losses(one_path);
  REQUIRE(reference.size() == kSteps);
  REQUIRE(reference.front() != reference.back());  // it trained

  const auto two_path = (dir / "r2.jsonl").string();
  auto two = train_grid(2, 2, with(tiny_args(2), {"--metrics", two_path}));
  INFO(two.output);
  REQUIRE(two.exit_code == 0);
  CHECK(two.output.find("2 replica(s) x 2 stage(s)") != std::string::npos);
  // The gradients are summed in another order (two partial sums, then their sum), so the
  // losses agree within rounding, not in every bit.
  CHECK(max_relative_difference(losses(two_path), reference) < 1e-6);

  // The same layout again: the same bits.
  const auto again_path = (dir / "r2-again.jsonl").string();
  REQUIRE(train_grid(2, 2, with(tiny_args(2), {"--metrics", again_path})).exit_code == 0);
  CHECK(loss_texts(again_path) == loss_texts(two_path));

  // ZeRO-1 (reduce-scatter, update the owned shard, all-gather) is the same arithmetic.
  const auto zero_path = (dir / "r2-zero.jsonl").string();
  auto zero = train_grid(2, 2, with(tiny_args(2), {"--zero", "1", "--metrics", zero_path}));
  INFO(zero.output);
  REQUIRE(zero.exit_code == 0);
  CHECK(zero.output.find("ZeRO-1: this replica's share") != std::string::npos);
  CHECK(loss_texts(zero_path) == loss_texts(two_path));
}

TEST_CASE("2 replicas give the same bits for every stage count, schedule, layout and bucket size",
          "[pipeline]") {
  // Two replicas sum each gradient element in one addition, a + b == b + a: the order the
  // ring uses cannot matter (docs/PARALLELISM.md).
  TempDir dir;
  const auto args = tiny_args(4, 20);
  const auto base_path = (dir / "base.jsonl").string();
  auto base = train_grid(2, 1, with(args, {"--metrics", base_path}));
  INFO(base.output);
  REQUIRE(base.exit_code == 0);
  const auto expected = loss_texts(base_path);
  REQUIRE(expected.size() == 20);
  struct Grid {
    int stages;
    std::vector<std::string> flags;
  };
  const std::vector<Grid> grids = {
      {2, {"--schedule", "zb-h1", "--layout", "replicas"}},
      {2, {"--schedule", "interleaved", "--virtual-stages", "2", "--zero", "1"}},
      {4, {"--schedule", "1f1b", "--overlap", "off", "--bucket-mb", "0.01"}},
      {2, {"--schedule", "zb-v", "--zero", "1"}},
      {2, {"--schedule", "dualpipe-v", "--layout", "replicas"}},
  };
  for (size_t i = 0; i < grids.size(); ++i) {
    const Grid& g = grids[i];
    const auto path = (dir / ("grid" + std::to_string(i) + ".jsonl")).string();
    auto r = train_grid(2, g.stages, with(with(args, g.flags), {"--metrics", path}));
    INFO("2 replicas x " << g.stages << " stages\n" << r.output);
    REQUIRE(r.exit_code == 0);
    CHECK(loss_texts(path) == expected);
  }
}

TEST_CASE("3 replicas repeat their bits and stay within rounding of one pipeline", "[pipeline]") {
  TempDir dir;
  // Small buckets: several per stage, each summed from another replica of the ring.
  const auto args = with(tiny_args(2, 20), {"--bucket-mb", "0.01"});
  const auto three_path = (dir / "r3.jsonl").string();
  auto three = train_grid(3, 2, with(args, {"--metrics", three_path}));
  INFO(three.output);
  REQUIRE(three.exit_code == 0);
  // The same grid again, with ZeRO-1, on the other layout and without overlap: the same order.
  const auto again_path = (dir / "r3-again.jsonl").string();
  auto again = train_grid(3, 2,
                          with(args, {"--zero", "1", "--layout", "replicas", "--overlap", "off",
                                      "--metrics", again_path}));
  INFO(again.output);
  REQUIRE(again.exit_code == 0);
  CHECK(loss_texts(again_path) == loss_texts(three_path));
  // One pipeline with the same global batch: another order, the same numbers within rounding.
  const auto one_path = (dir / "r1.jsonl").string();
  REQUIRE(train_grid(1, 2, with(tiny_args(6, 20), {"--metrics", one_path})).exit_code == 0);
  CHECK(max_relative_difference(losses(three_path), losses(one_path)) < 1e-6);
}

TEST_CASE("a checkpoint of 2 replicas x 2 stages with ZeRO-1 resumes on other grids",
          "[pipeline][checkpoint]") {
  TempDir dir;
  const auto whole_path = (dir / "whole.jsonl").string();
  const auto whole_ckpt = (dir / "whole").string();
  REQUIRE(
      train_grid(2, 2, with(tiny_args(2, 20), {"--ckpt-dir", whole_ckpt, "--metrics", whole_path}))
          .exit_code == 0);
  const auto uninterrupted = losses(whole_path);

  // Stop after step 10, saving; every rank writes the parameters its replica owns, once.
  const auto cut = (dir / "cut").string();
  auto first = train_grid(
      2, 2, with(tiny_args(2, 20), {"--zero", "1", "--ckpt-dir", cut, "--exit-at-step", "10"}));
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  const auto manifest = nlohmann::json::parse(
      conveyor::read_input_file(std::filesystem::path(cut) / "step_000000010" / "manifest.json"));
  CHECK(manifest.at("shards").size() == 4);
  std::map<std::string, int> written;  // parameter -> shards holding it
  for (const auto& shard : manifest.at("shards"))
    for (const auto& [path, info] : shard.at("datasets").items())
      if (path.rfind("/params/", 0) == 0) ++written[path];
  for (const auto& [path, count] : written) {
    INFO(path);
    CHECK(count == (path == "/params/wte.weight" ? 2 : 1));  // wte: the embedding and the head
  }
  CHECK(manifest.at("config").at("replicas") == 2);

  struct Grid {
    int replicas, stages, microbatches;
  };
  // Two replicas on another stage count sum in the same order (docs/PARALLELISM.md): the same
  // bits and the same final state. Another replica count: within rounding.
  for (const Grid g : {Grid{2, 1, 2}, Grid{1, 4, 4}, Grid{4, 1, 1}}) {
    const auto ckpt =
        (dir / ("to" + std::to_string(g.replicas) + "x" + std::to_string(g.stages))).string();
    std::filesystem::copy(cut, ckpt, std::filesystem::copy_options::recursive);
    const auto path = ckpt + ".jsonl";
    auto r =
        train_grid(g.replicas, g.stages,
                   with(tiny_args(g.microbatches, 20), {"--ckpt-dir", ckpt, "--metrics", path}));
    INFO(g.replicas << " replicas x " << g.stages << " stages\n" << r.output);
    REQUIRE(r.exit_code == 0);
    CHECK(r.output.find("resumed from") != std::string::npos);
    const auto resumed = losses(path);
    REQUIRE(resumed.size() == 10);
    const std::vector<double> tail(uninterrupted.begin() + 10, uninterrupted.end());
    if (g.replicas == 2) {
      CHECK(resumed == tail);
      CHECK(state_checksums(ckpt) == state_checksums(whole_ckpt));
    } else {
      CHECK(max_relative_difference(resumed, tail) < 1e-6);
    }
  }
}

TEST_CASE("a replica killed in the middle of the gradient all-reduce is named and ends the job",
          "[pipeline][launch]") {
  // Rank 1 (replica 1 of a one-stage job) dies with SIGKILL after a bucket's reduce-scatter of
  // step 3, while rank 0 waits in the ring for its half of the all-gather.
  auto r = train_grid(2, 1, tiny_args(2, 20), {"CONVEYOR_FAULT_KILL_IN_ALL_REDUCE=3:1"});
  INFO(r.output);
  CHECK(r.output.find("[test harness: killed after timeout]") == std::string::npos);
  CHECK(r.exit_code == 128 + SIGKILL);
  CHECK(r.output.find("rank 1 failed (exit 137)") != std::string::npos);
  bool named = false;
  for (const auto& line : lines_of(r.output)) {
    int rank = -1;
    const auto text = strip_rank_prefix(line, &rank);
    named |= rank == 0 && text.find("rank 1 (host ") != std::string::npos;
  }
  CHECK(named);
}

TEST_CASE(
    "the trace of a data-parallel run shows every rank, its gradient all-reduce and its "
    "transfers",
    "[pipeline]") {
  TempDir dir;
  const auto trace = (dir / "t.json").string();
  auto r = train_grid(2, 2, with(tiny_args(2, 3), {"--bucket-mb", "0.01", "--trace", trace}));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const auto events = nlohmann::json::parse(conveyor::read_input_file(trace)).at("traceEvents");
  std::map<int, std::string> rows;
  std::map<int, int> reductions, transfers;  // row -> all-reduce spans, transfer spans
  for (const auto& e : events) {
    if (e.at("ph") == "M") rows[e.at("tid").get<int>()] = e.at("args").at("name");
    if (e.value("cat", "") == "allreduce") ++reductions[e.at("tid").get<int>()];
    if (e.value("cat", "") == "transfer") ++transfers[e.at("tid").get<int>()];
  }
  for (int rank = 0; rank < 4; ++rank) {
    const std::string where = fmt::format("replica {} stage {}", rank / 2, rank % 2);
    CHECK(rows[rank] == where);
    CHECK(rows[4 + rank] == where + " all-reduce");
    // Several buckets per stage, every one of the 3 steps (the head's wte gradient too).
    CHECK(reductions[4 + rank] >= 3 * 3);
    CHECK(reductions[4 + rank] % 3 == 0);
    // Each stage's pipeline messages (2 micro-batches, each an activation or gradient), per
    // step, on its own transfer track.
    CHECK(rows[8 + rank] == where + " transfers");
    CHECK(transfers[8 + rank] == 3 * 2 * 2);
  }
}
