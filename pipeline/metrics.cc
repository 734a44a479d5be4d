#include "pipeline/metrics.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include "checkpoint/file_util.h"
#include "common/error.h"
#include "common/log.h"

namespace conveyor::pipeline {

namespace {

// Rewrites `path` keeping only the rows up to step `keep_through` (and no torn last line from
// a crash). Returns how many rows it dropped.
int roll_back(const std::string& path, int64_t keep_through) {
  std::ifstream in(path);
  if (!in) return 0;  // no file yet
  std::string kept, line;
  int dropped = 0;
  while (std::getline(in, line)) {
    const auto row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    const bool keep = row.is_object() && row.contains("step") && row["step"].is_number_integer() &&
                      row["step"].get<int64_t>() <= keep_through;
    if (keep)
      kept += line + "\n";
    else
      ++dropped;
  }
  if (dropped > 0) checkpoint::write_file_atomic(path, kept);
  return dropped;
}

}  // namespace

MetricsWriter::MetricsWriter(const std::string& path, std::optional<int64_t> resumed_at) {
  if (resumed_at) {
    if (const int dropped = roll_back(path, *resumed_at); dropped > 0)
      CONVEYOR_LOG_INFO("--metrics {}: removed {} row(s) past step {}, where this run resumes",
                        path, dropped, *resumed_at);
  }
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

namespace {

// A JSON number with `spec` (e.g. "{:.9g}"), or null when it is not finite.
std::string number(double v, fmt::format_string<double> spec) {
  return std::isfinite(v) ? fmt::format(spec, double(v)) : std::string("null");
}

}  // namespace

std::string format_metrics_line(const StepMetrics& m) {
  return fmt::format(
      "{{\"step\": {}, \"loss\": {}, \"lr\": {}, \"grad_norm\": {}, \"tokens_per_s\": {}, "
      "\"step_ms\": {}, \"bubble\": {}, \"tokens\": {}, \"elapsed_s\": {}, \"time\": {}, "
      "\"restarts\": {}}}",
      m.step, number(m.loss, "{:.9g}"), number(m.lr, "{:.9g}"), number(m.grad_norm, "{:.9g}"),
      number(m.tokens_per_s, "{:.1f}"), number(m.step_ms, "{:.3f}"), number(m.bubble, "{:.4f}"),
      m.tokens, number(m.elapsed_s, "{:.3f}"), number(m.time, "{:.3f}"), m.restarts);
}

std::string format_metrics_line(const ValidationMetrics& m) {
  return fmt::format(
      "{{\"step\": {}, \"val_loss\": {}, \"val_windows\": {}, \"elapsed_s\": {}, "
      "\"time\": {}}}",
      m.step, number(m.val_loss, "{:.9g}"), m.windows, number(m.elapsed_s, "{:.3f}"),
      number(m.time, "{:.3f}"));
}

void MetricsWriter::write(const StepMetrics& m) {
  write_line(format_metrics_line(m));
}

void MetricsWriter::write(const ValidationMetrics& m) {
  write_line(format_metrics_line(m));
}

void MetricsWriter::write_line(const std::string& text) {
  if (!file_) return;
  const std::string line = text + "\n";
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
