// Model FLOPs (model/flops.h) and the table of device peaks (kernels/device_peaks.h): the two
// halves of MFU.
#include <catch2/catch.hpp>

#include "kernels/device_peaks.h"
#include "model/config.h"
#include "model/flops.h"
#include "tests/test_util.h"

using namespace conveyor;

TEST_CASE("training FLOPs per token of GPT-2 small are 6 N + 12 L d T", "[model]") {
  const model::ModelConfig gpt2 = conveyor::test::gpt2_small();
  // Hugging Face's GPT-2 small has 124,439,808 parameters (the embedding tied with the head).
  REQUIRE(gpt2.num_parameters() == 124439808u);
  CHECK(model::training_flops_per_token(gpt2) == 6.0 * 124439808 + 12.0 * 12 * 768 * 1024);
}

TEST_CASE("device peaks are found by the driver's device name", "[model]") {
  struct Case {
    const char* device;
    const char* entry;
    double bf16;
  };
  for (const Case& c :
       {Case{"NVIDIA H200", "H200", 989.4}, Case{"NVIDIA H100 80GB HBM3", "H100 SXM", 989.4},
        Case{"NVIDIA H100 PCIe", "H100 PCIe", 756.5}, Case{"NVIDIA GH200 480GB", "GH200", 989.4},
        Case{"NVIDIA A100-SXM4-80GB", "A100", 312.0}, Case{"NVIDIA A10", "A10", 125.0}}) {
    INFO(c.device);
    const auto peak = kernels::known_peak(c.device);
    REQUIRE(peak.has_value());
    CHECK(std::string(peak->name) == c.entry);
    CHECK(peak->bf16_tflops == c.bf16);
    CHECK(peak->fp32_tflops > 0);
    CHECK(peak->fp32_tflops < peak->bf16_tflops);
  }
  CHECK_FALSE(kernels::known_peak("NVIDIA GeForce RTX 4090").has_value());
  CHECK_FALSE(kernels::known_peak("").has_value());
}
