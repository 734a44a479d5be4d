// Bad pipeline settings exit 2 with a message that says what is wrong and how to fix it,
// before any training starts.
#include <catch2/catch.hpp>

#include <exception>

#include "kernels/backend.h"
#include "tests/integration/pipeline/pipeline_test_util.h"

using namespace conveyor::test;

namespace {

std::vector<std::string> tiny_args() {
  auto args = tiny_model_args({.layers = 4, .microbatches = 4, .micro_batch_size = 1});
  args.insert(args.end(), {"--steps", "2"});
  return args;
}

// Runs `args` and requires exit 2 and every one of `must_mention` in the output.
void expect_usage_error(const std::vector<std::string>& args,
                        const std::vector<std::string>& must_mention,
                        const std::vector<std::string>& env = {}) {
  auto r = run_conveyor(args, env, 60);
  std::string command;
  for (const auto& a : args) command += a + " ";
  INFO(command << "\n" << r.output);
  REQUIRE(r.exit_code == 2);
  for (const auto& text : must_mention) CHECK(r.output.find(text) != std::string::npos);
}

bool kernels_have_cuda() {
  return conveyor::kernels::backend_names().find("cuda") != std::string::npos;
}

std::vector<std::string> launched(int nproc, const std::vector<std::string>& train_args) {
  return with({"launch", "--nproc", std::to_string(nproc), "--", "conveyor", "train"}, train_args);
}

}  // namespace

TEST_CASE("more stages than layers exits 2", "[pipeline]") {
  expect_usage_error(with({"train"}, with(tiny_args(), {"--stages", "5"})),
                     {"--stages 5", "4 layers", "lower --stages or raise --layers"});
  // Interleaved: stages x virtual stages pieces, each needs a layer.
  expect_usage_error(launched(4, with(tiny_args(), {"--stages", "4", "--schedule", "interleaved",
                                                    "--virtual-stages", "2"})),
                     {"--virtual-stages 2", "lower --stages or raise --layers"});
}

TEST_CASE("a --partition that does not place every layer once exits 2", "[pipeline]") {
  expect_usage_error(launched(2, with(tiny_args(), {"--stages", "2", "--partition", "3,3"})),
                     {"--partition '3,3'", "must add up to the layer count"});
  expect_usage_error(launched(2, with(tiny_args(), {"--stages", "2", "--partition", "4,0"})),
                     {"--partition '4,0'", "at least one"});
}

TEST_CASE("the number of processes must be --replicas x --stages", "[pipeline]") {
  // Started by hand without a launcher: say how to start one process per stage.
  expect_usage_error(with({"train"}, with(tiny_args(), {"--stages", "2"})),
                     {"--stages is 2", "conveyor launch --nproc 2"});
  // Not a whole number of pipelines.
  expect_usage_error(launched(2, with(tiny_args(), {"--stages", "4"})),
                     {"WORLD_SIZE is 2 but --stages is 4", "conveyor launch --nproc 4"});
  expect_usage_error(launched(3, with(tiny_args(), {"--stages", "2"})),
                     {"WORLD_SIZE is 3 but --stages is 2"});
  // --replicas given: the world must match it exactly (one stage started twice by mistake
  // would otherwise train as two replicas).
  expect_usage_error(
      launched(2, with(tiny_args(), {"--stages", "1", "--replicas", "1"})),
      {"WORLD_SIZE is 2 but --replicas 1 x --stages 1 is 1", "conveyor launch --nproc 1"});
  expect_usage_error(launched(2, with(tiny_args(), {"--stages", "2", "--replicas", "2"})),
                     {"--replicas 2 x --stages 2 is 4", "conveyor launch --nproc 4"});
  // The message names the variable the world size came from.
  expect_usage_error(with({"train"}, with(tiny_args(), {"--stages", "2"})),
                     {"SLURM_NTASKS is 3 but --stages is 2"},
                     {"SLURM_PROCID=0", "SLURM_NTASKS=3", "CONVEYOR_JOB_TOKEN=t"});
}

TEST_CASE("data-parallel flags out of range exit 2 naming the flag", "[pipeline]") {
  expect_usage_error(with({"train"}, with(tiny_args(), {"--zero", "2"})),
                     {"--zero 2", "use 0 (off) or 1"});
  expect_usage_error(with({"train"}, with(tiny_args(), {"--layout", "grid"})),
                     {"--layout 'grid'", "pipelines", "replicas"});
  expect_usage_error(with({"train"}, with(tiny_args(), {"--bucket-mb", "0"})),
                     {"--bucket-mb must be more than 0"});
  expect_usage_error(with({"train"}, with(tiny_args(), {"--overlap", "maybe"})),
                     {"--overlap 'maybe'", "on", "off"});
  expect_usage_error(with({"train"}, with(tiny_args(), {"--replicas", "-1"})),
                     {"--replicas must be between 1 and"});
}

TEST_CASE("the V schedules refuse what they cannot run, at start-up", "[pipeline]") {
  expect_usage_error(launched(2, with(tiny_args(), {"--stages", "2", "--schedule", "dualpipe-v",
                                                    "--microbatches", "3"})),
                     {"at least 2 x --stages micro-batches", "use --microbatches 4"});
  expect_usage_error(launched(2, with(tiny_args(), {"--stages", "2", "--schedule", "zb-v",
                                                    "--virtual-stages", "1"})),
                     {"exactly 2 virtual stages", "leave --virtual-stages out"});
}

TEST_CASE("interleaved needs micro-batches in groups of the stage count", "[pipeline]") {
  expect_usage_error(
      launched(2, with(tiny_args(), {"--stages", "2", "--schedule", "interleaved",
                                     "--virtual-stages", "2", "--microbatches", "3"})),
      {"multiple of --stages", "use --microbatches 4"});
  expect_usage_error(launched(2, with(tiny_args(), {"--stages", "2", "--schedule", "interleaved",
                                                    "--virtual-stages", "1"})),
                     {"--virtual-stages 2"});
}

TEST_CASE("an unknown --schedule exits 2 and lists the known ones", "[pipeline]") {
  expect_usage_error(with({"train"}, with(tiny_args(), {"--schedule", "pipedream"})),
                     {"pipedream", "gpipe, 1f1b, interleaved, zb-h1"});
  expect_usage_error(launched(2, with(tiny_args(), {"--stages", "2", "--schedule", "zb"})),
                     {"'zb'", "gpipe, 1f1b, interleaved, zb-h1"});
}

TEST_CASE("conveyor schedule rejects impossible pipelines with exit 2", "[pipeline]") {
  expect_usage_error({"schedule", "--stages", "0"}, {"--stages"});
  expect_usage_error({"schedule", "--microbatches", "0"}, {"--microbatches"});
  expect_usage_error({"schedule", "--schedule", "nope"}, {"nope", "1f1b"});
  expect_usage_error(
      {"schedule", "--schedule", "interleaved", "--stages", "4", "--microbatches", "6"},
      {"multiple of --stages"});
  expect_usage_error({"schedule", "--f-cost", "0"}, {"--f-cost"});
}

TEST_CASE("training on cuda without a GPU exits 2 saying no GPU was found", "[pipeline]") {
  // The same question make_backend answers for `conveyor train`, asked in this process first:
  // where a GPU is found, training on it is scripts/gpu-check.sh's to test, not this case's.
  const bool compiled = kernels_have_cuda();
  if (compiled) {
    try {
      conveyor::kernels::make_backend({.device = conveyor::kernels::DeviceKind::kCuda});
      WARN("SKIPPED: a GPU is usable here, so --device cuda trains instead of failing");
      return;
    } catch (const std::exception&) {
    }
  }
  const auto args = with({"train"}, with(tiny_args(), {"--device", "cuda"}));
  if (compiled) {
    expect_usage_error(args, {"no GPU was found"});
    // Two ranks, one GPU or none: each fails the same way, the job with exit 2.
    expect_usage_error(launched(2, with(tiny_args(), {"--stages", "2", "--device", "cuda"})),
                       {"no GPU was found"});
  } else {
    expect_usage_error(args, {"cuda", "cpu"});  // names the devices this build offers
  }
  expect_usage_error(with({"train"}, with(tiny_args(), {"--gpu", "1"})),
                     {"--gpu 1 needs --device cuda"});
  expect_usage_error(with({"train"}, with(tiny_args(), {"--device", "cuda", "--gpu", "-2"})),
                     {"--gpu must be a GPU index"});
}
