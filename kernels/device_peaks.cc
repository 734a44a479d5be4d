#include "kernels/device_peaks.h"

#include <array>

namespace conveyor::kernels {

namespace {

struct Entry {
  std::string_view key;  // a substring of the driver's device name
  DevicePeak peak;
};

// More specific keys first ("H100 PCIe" before "H100", "GH200" before "H200", "A100" before
// "A10"). NVIDIA datasheets, dense figures:
// H100/H200 SXM 989.4 bf16, 66.9 fp32; H100 PCIe 756.5, 51.2; A100 312, 19.5;
// L40S 362.1, 91.6; A10 125, 31.2.
constexpr std::array<Entry, 7> kPeaks = {{
    {"H100 PCIe", {"H100 PCIe", 756.5, 51.2}},
    {"GH200", {"GH200", 989.4, 66.9}},
    {"H200", {"H200", 989.4, 66.9}},
    {"H100", {"H100 SXM", 989.4, 66.9}},
    {"A100", {"A100", 312.0, 19.5}},
    {"L40S", {"L40S", 362.1, 91.6}},
    {"A10", {"A10", 125.0, 31.2}},
}};

}  // namespace

std::optional<DevicePeak> known_peak(std::string_view device_name) {
  for (const Entry& e : kPeaks)
    if (device_name.find(e.key) != std::string_view::npos) return e.peak;
  return std::nullopt;
}

}  // namespace conveyor::kernels
