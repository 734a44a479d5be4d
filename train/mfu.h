// MFU (model FLOPs utilisation) for the metrics: model/flops.h's formula (the one place it is
// stated), with the metrics row's tokens_per_s, which counts every replica's tokens of a step
// over the step's wall time and so is the whole job's, and ranks = the world size, --replicas
// x --stages. Every rank is taken to run on a device with the reporting rank's peak.
//
// The peak of one rank's device: --peak-tflops when given, else with --device cuda the
// rank's GPU's dense fp32 peak from kernels/device_peaks.h (the CUDA backend runs fp32 without
// TF32), else none, and then no MFU is reported. Pure; thread-safe.
#pragma once

#include <string>

#include "kernels/device.h"

namespace conveyor::pipeline {

struct MfuPeak {
  double tflops = 0;   // dense TFLOP/s of one rank's device; 0: none known
  std::string source;  // where it came from ("--peak-tflops", "H100 SXM, dense fp32"); or,
                       // with no peak, why ("" on the CPU without --peak-tflops)
};

// `peak_tflops_flag` is --peak-tflops (0: not given); `gpu` the rank's GPU with --device
// cuda, else null.
MfuPeak choose_mfu_peak(double peak_tflops_flag, const kernels::Gpu* gpu);

// The start-up line: "MFU against 66.9 TFLOP/s per rank (H100 SXM, dense fp32) x 4 ranks",
// why there is no MFU when a GPU's peak is unknown, or "" on the CPU without --peak-tflops.
std::string describe(const MfuPeak& peak, int ranks);

// model/flops.h's MFU, the peak in TFLOP/s. REQUIRES ranks >= 1 and peak_tflops > 0. Not
// clamped: a peak below what the job achieves gives more than 1. Not finite when tokens_per_s
// is not.
double model_flops_utilization(double tokens_per_s, double flops_per_token, int ranks,
                               double peak_tflops);

}  // namespace conveyor::pipeline
