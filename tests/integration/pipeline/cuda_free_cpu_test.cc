// A rank on --device cpu stays away from the CUDA runtime, even in a build with CUDA on a
// host with GPUs: no context on GPU 0 per CPU rank, no runtime start-up. Checked with an
// LD_PRELOAD shim (tests/shims/cuda_calls.cc) that logs every CUDA call able to start the
// runtime or open a context; `conveyor doctor`, which asks for the GPUs, shows the shim sees
// such calls.
#include <catch2/catch.hpp>

#include <string>

#include "tests/integration/pipeline/pipeline_test_util.h"

using namespace conveyor::test;

TEST_CASE("ranks on the cpu make no call into the CUDA runtime", "[pipeline][cuda]") {
#if !defined(CONVEYOR_CUDA_CALLS_SHIM)
  WARN("SKIPPED: this build has no CUDA, so there is no runtime to stay away from");
#elif defined(CONVEYOR_SANITIZER_BUILD)
  // The sanitizers' runtimes must come first in the library list, before any LD_PRELOAD shim.
  WARN("SKIPPED: an LD_PRELOAD shim cannot run under the sanitizers");
#else
  TempDir dir;
  const std::string log = (dir / "cuda_calls.txt").string();
  const std::vector<std::string> env = {std::string("LD_PRELOAD=") + CONVEYOR_CUDA_CALLS_SHIM,
                                        "CONVEYOR_CUDA_CALLS_LOG=" + log};
  // The shim sees the calls a GPU query makes.
  auto doctor = run_conveyor({"doctor"}, env);
  INFO(doctor.output);
  REQUIRE(doctor.exit_code == 0);
  REQUIRE_THAT(read_file(log), Catch::Contains("cudaGetDeviceCount"));
  std::filesystem::remove(log);

  // Two stages times two replicas (the gradient all-reduce's thread), an asynchronous
  // checkpoint (the saver's thread), a sample at the end.
  auto args = with({"launch", "--nproc", "4", "--", "conveyor", "train", "--device", "cpu",
                    "--stages", "2", "--replicas", "2"},
                   tiny_model_args({.layers = 2, .microbatches = 2, .micro_batch_size = 1}));
  args = with(args, {"--steps", "3", "--ckpt-dir", (dir / "ck").string(), "--save-every", "2",
                     "--async-save", "--sample", "8"});
  auto r = run_conveyor(args, env);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(!std::filesystem::exists(log));
  if (std::filesystem::exists(log)) FAIL_CHECK("CUDA calls made:\n" << read_file(log));
#endif
}
