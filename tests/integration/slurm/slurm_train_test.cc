// conveyor under a real Slurm cluster (slurm_fixture.h): a plain `srun conveyor train` with
// an exported secret, `conveyor launch` inside an allocation (it runs srun itself), and the
// sbatch example launcher/slurm/train.sbatch. Each trains four stages on two nodes with the
// one-stage losses bit for bit; rank 0's host comes from SLURM_JOB_NODELIST.
#include <catch2/catch.hpp>

#include <filesystem>

#include "tests/integration/slurm/slurm_fixture.h"

using namespace conveyor::test;

namespace {

std::vector<std::string> tiny_train(const std::string& metrics) {
  return with(tiny_model_args({.layers = 4, .microbatches = 4, .micro_batch_size = 2}),
              {"--steps", "4", "--metrics", metrics});
}

// The one-stage losses of tiny_train, for comparison.
std::vector<std::string> one_stage_losses(const TempDir& dir) {
  const auto path = (dir / "one.jsonl").string();
  auto r = run_conveyor(with(with({"train"}, tiny_train(path)), {"--stages", "1"}));
  REQUIRE(r.exit_code == 0);
  return loss_texts(path);
}

std::vector<std::string> plus(std::vector<std::string> env, const std::string& more) {
  env.push_back(more);
  return env;
}

}  // namespace

TEST_CASE("srun -N2 -n4 conveyor train runs four stages with the one-stage losses", "[slurm]") {
  SKIP_WITHOUT_SLURM();
  SlurmCluster cluster;
  TempDir dir;
  const auto metrics = (dir / "four.jsonl").string();
  auto r = run_program(with({"srun", "-N2", "-n4", "--kill-on-bad-exit=1", CONVEYOR_BIN, "train"},
                            with(tiny_train(metrics), {"--stages", "4"})),
                       plus(cluster.env(), "CONVEYOR_JOB_TOKEN=a-secret-for-this-test"), 120);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(loss_texts(metrics) == one_stage_losses(dir));
}

TEST_CASE("conveyor launch inside an allocation starts the ranks with srun", "[slurm]") {
  SKIP_WITHOUT_SLURM();
  SlurmCluster cluster;
  TempDir dir;
  const auto metrics = (dir / "four.jsonl").string();
  // No secret exported: launch makes one. salloc runs launch with SLURM_JOB_ID set.
  auto r =
      run_program(with({"salloc", "-N2", "-n4", CONVEYOR_BIN, "launch", "--", "conveyor", "train"},
                       with(tiny_train(metrics), {"--stages", "4"})),
                  cluster.env(), 120);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("starting the ranks with srun") != std::string::npos);
  CHECK(r.output.find("[rank 3] ") != std::string::npos);  // srun --label, relabelled
  CHECK(loss_texts(metrics) == one_stage_losses(dir));
}

TEST_CASE("the sbatch example trains on two nodes", "[slurm]") {
  SKIP_WITHOUT_SLURM();
  SlurmCluster cluster;
  TempDir dir;
  const auto ckpt = dir / "ckpt";
  const std::string script = std::string(CONVEYOR_SOURCE_DIR) + "/launcher/slurm/train.sbatch";
  auto r = run_program(
      with({"sbatch", "--wait", "-N2", "--ntasks-per-node=2", "-D", dir.str(), "-o",
            (dir / "job.out").string(), script},
           with(tiny_model_args({.layers = 4, .microbatches = 4, .micro_batch_size = 2}),
                {"--steps", "20"})),
      plus(plus(cluster.env(), std::string("CONVEYOR=") + CONVEYOR_BIN), "CKPT=" + ckpt.string()),
      180);
  INFO(r.output);
  INFO(read_file(dir / "job.out"));
  REQUIRE(r.exit_code == 0);
  const auto four = loss_texts((ckpt / "metrics.jsonl").string());
  const auto one_path = (dir / "one.jsonl").string();
  auto one = run_conveyor(with(
      with({"train"}, tiny_model_args({.layers = 4, .microbatches = 4, .micro_batch_size = 2})),
      {"--steps", "20", "--stages", "1", "--metrics", one_path}));
  REQUIRE(one.exit_code == 0);
  CHECK(four == loss_texts(one_path));
  CHECK(std::filesystem::exists(ckpt / "LATEST"));
}
