// MFU (train/mfu.h): which peak a run measures against and where it came from, and the
// formula, on numbers chosen so the answer is known.
#include <catch2/catch.hpp>

#include "kernels/device.h"
#include "model/config.h"
#include "model/flops.h"
#include "tests/test_util.h"
#include "train/mfu.h"

using namespace conveyor;
using namespace conveyor::pipeline;

namespace {

kernels::Gpu gpu_named(const std::string& name) {
  kernels::Gpu gpu;
  gpu.index = 3;
  gpu.name = name;
  return gpu;
}

}  // namespace

TEST_CASE("the MFU peak: --peak-tflops, else a known GPU's fp32 peak, else none", "[train]") {
  const kernels::Gpu h100 = gpu_named("NVIDIA H100 80GB HBM3");
  const kernels::Gpu unknown = gpu_named("NVIDIA GeForce RTX 4090");

  // The flag wins, on any device.
  for (const kernels::Gpu* gpu : {static_cast<const kernels::Gpu*>(nullptr), &h100, &unknown}) {
    const MfuPeak peak = choose_mfu_peak(0.186, gpu);
    CHECK(peak.tflops == 0.186);
    CHECK(peak.source == "--peak-tflops");
  }
  CHECK(describe(choose_mfu_peak(0.186, nullptr), 1) ==
        "MFU against 0.186 TFLOP/s per rank (--peak-tflops) x 1 rank");

  // A known GPU: its dense fp32 peak (the CUDA backend runs fp32 without TF32).
  const MfuPeak h100_peak = choose_mfu_peak(0, &h100);
  CHECK(h100_peak.tflops == 66.9);
  CHECK(describe(h100_peak, 8) ==
        "MFU against 66.9 TFLOP/s per rank (H100 SXM, dense fp32) x 8 ranks");

  // An unknown GPU: no peak, and the start-up line says why and what to do.
  const MfuPeak none = choose_mfu_peak(0, &unknown);
  CHECK(none.tflops == 0);
  CHECK_THAT(describe(none, 1), Catch::Contains("no MFU") &&
                                    Catch::Contains("NVIDIA GeForce RTX 4090") &&
                                    Catch::Contains("--peak-tflops"));

  // The CPU without the flag: no peak, and nothing to say.
  CHECK(choose_mfu_peak(0, nullptr).tflops == 0);
  CHECK(describe(choose_mfu_peak(0, nullptr), 1).empty());
}

TEST_CASE("MFU is the job's model FLOP/s over its ranks' peak", "[train]") {
  // 1000 tokens/s of 6 GFLOP each is 6 TFLOP/s; 4 ranks of 10 TFLOP/s offer 40: 15%.
  CHECK(model_flops_utilization(1000, 6e9, 4, 10) == Approx(0.15).epsilon(1e-12));
  // Twice the ranks for the same job-wide rate: half the utilisation.
  CHECK(model_flops_utilization(1000, 6e9, 8, 10) == Approx(0.075).epsilon(1e-12));

  // GPT-2 small (6 N + 12 L d T = 0.8599 GFLOP per token) at 300k tokens/s is 258.0 TFLOP/s;
  // 8 H100s' fp32 peak is 535.2: 48.2%.
  const model::ModelConfig gpt2 = conveyor::test::gpt2_small();
  const double flops = model::training_flops_per_token(gpt2);
  REQUIRE(flops == 6.0 * 124439808 + 12.0 * 12 * 768 * 1024);
  CHECK(model_flops_utilization(300000, flops, 8, 66.9) == Approx(0.4820).margin(5e-5));
}
