#include "train/mfu.h"

#include <fmt/format.h>

#include "common/printable.h"
#include "kernels/device_peaks.h"

namespace conveyor::pipeline {

MfuPeak choose_mfu_peak(double peak_tflops_flag, const kernels::Gpu* gpu) {
  if (peak_tflops_flag > 0) return {peak_tflops_flag, "--peak-tflops"};
  if (gpu == nullptr) return {};
  if (const auto peak = kernels::known_peak(gpu->name))
    return {peak->fp32_tflops, fmt::format("{}, dense fp32", peak->name)};
  return {0, fmt::format("GPU {} ({}) is not in the table of known peaks", gpu->index,
                         printable(gpu->name))};
}

std::string describe(const MfuPeak& peak, int ranks) {
  if (peak.tflops > 0)
    return fmt::format("MFU against {:g} TFLOP/s per rank ({}) x {} rank{}", peak.tflops,
                       peak.source, ranks, ranks == 1 ? "" : "s");
  if (peak.source.empty()) return {};
  return fmt::format("no MFU in the metrics: {}; --peak-tflops gives the device's dense TFLOP/s",
                     peak.source);
}

double model_flops_utilization(double tokens_per_s, double flops_per_token, int ranks,
                               double peak_tflops) {
  return tokens_per_s * flops_per_token / (double(ranks) * peak_tflops * 1e12);
}

}  // namespace conveyor::pipeline
