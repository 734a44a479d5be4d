#include "pipeline/metrics.h"

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "common/error.h"

namespace conveyor::pipeline {

MetricsWriter::MetricsWriter(const std::string& path) {
  file_ = std::fopen(path.c_str(), "a");
  if (!file_) {
    throw Error(ErrorKind::kUsage,
                fmt::format("cannot open --metrics file '{}': {}", path, std::strerror(errno)),
                "check that the directory exists and is writable");
  }
}

MetricsWriter::~MetricsWriter() {
  if (file_) std::fclose(file_);
}

std::string format_metrics_line(const StepMetrics& m) {
  return fmt::format(
      "{{\"step\": {}, \"loss\": {:.9g}, \"lr\": {:.9g}, \"grad_norm\": {:.9g}, "
      "\"tokens_per_s\": {:.1f}, \"step_ms\": {:.3f}, \"bubble\": {:.4f}}}",
      m.step, m.loss, m.lr, m.grad_norm, m.tokens_per_s, m.step_ms, m.bubble);
}

void MetricsWriter::write(const StepMetrics& m) {
  if (!file_) return;
  std::string line = format_metrics_line(m) + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0) {
    throw Error(ErrorKind::kRuntime,
                fmt::format("writing the metrics file failed: {}", std::strerror(errno)));
  }
}

std::string format_duration(double s) {
  if (s < 0) s = 0;
  long total = static_cast<long>(s + 0.5);
  if (total >= 3600) return fmt::format("{}h{:02d}m", total / 3600, (total % 3600) / 60);
  if (total >= 60) return fmt::format("{}m{:02d}s", total / 60, total % 60);
  return fmt::format("{}s", total);
}

std::string progress_line(const StepMetrics& m, int64_t total_steps, double eta_seconds) {
  const int width = static_cast<int>(fmt::format("{}", total_steps).size());
  std::string rate = m.tokens_per_s >= 1e4 ? fmt::format("{:.1f}k", m.tokens_per_s / 1e3)
                                           : fmt::format("{:.0f}", m.tokens_per_s);
  return fmt::format(
      "step {:>{}}/{} | loss {:.4f} | lr {:.2e} | {} tok/s | {:.0f} ms | bubble {:.2f} | ETA {}",
      m.step, width, total_steps, m.loss, m.lr, rate, m.step_ms, m.bubble,
      format_duration(eta_seconds));
}

}  // namespace conveyor::pipeline
