// Dense peak throughput of known GPUs, the denominator of MFU (model/flops.h): from the
// vendors' datasheets, without sparsity. Matched by the name the driver reports
// (cudaGetDeviceProperties' name, as `nvidia-smi` prints it); an unknown device has no peak,
// and `--peak-tflops` then supplies one (MFU is left out of the metrics without either).
#pragma once

#include <optional>
#include <string_view>

namespace conveyor::kernels {

struct DevicePeak {
  const char* name;    // the table's entry, e.g. "H100 SXM"
  double bf16_tflops;  // dense bf16 tensor cores
  double fp32_tflops;  // plain fp32 (no TF32: the fp32 backend runs with TF32 off)
};

// The entry whose key the device name contains ("NVIDIA H200" -> H200), or none.
std::optional<DevicePeak> known_peak(std::string_view device_name);

}  // namespace conveyor::kernels
