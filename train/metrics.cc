#include "train/metrics.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string_view>

#include <fmt/format.h>

#include "common/error.h"
#include "common/file_io.h"
#include "common/log.h"
#include "common/printable.h"

namespace conveyor::pipeline {

namespace {

// Rewrites `path` without the step rows past `keep_through` (and without a torn last line,
// from a crash mid-write). Every other line is kept as it is: a line that is not a row is
// not this run's to delete. Returns how many rows it dropped. Only a regular file is rolled
// back: a stream (--metrics /dev/stdout, a FIFO) cannot be re-read, and reading it would block.
int roll_back(const std::string& path, int64_t keep_through) {
  if (!is_plain_regular_file(path)) return 0;
  const std::string text = read_input_file(path, "--metrics file");
  std::string kept;
  int dropped = 0;
  size_t begin = 0;
  while (begin < text.size()) {
    const size_t end = text.find('\n', begin);
    if (end == std::string::npos) break;  // torn: the crash came before its newline
    const std::string_view line(text.data() + begin, end - begin);
    begin = end + 1;
    const auto row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    const bool later_row = row.is_object() && row.contains("step") &&
                           row["step"].is_number_integer() &&
                           row["step"].get<int64_t>() > keep_through;
    if (later_row)
      ++dropped;
    else
      kept.append(line).append("\n");
  }
  if (kept.size() != text.size()) write_file_atomic(path, kept);
  return dropped;
}

}  // namespace

MetricsWriter::MetricsWriter(const std::string& path, std::optional<int64_t> resumed_at) {
  if (resumed_at) {
    if (const int dropped = roll_back(path, *resumed_at); dropped > 0)
      CONVEYOR_LOG_INFO("--metrics {}: removed {} row(s) past step {}, where this run resumes",
                        printable(path), dropped, *resumed_at);
  }
  // A stream is allowed (--metrics /dev/stdout); a link to a file, a FIFO without a reader
  // and a device are not.
  file_ =
      open_output_stream(path, WriteMode::kAppend, "--metrics file", OutputTarget::kRegularOrStream)
          .release();
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
  // mfu comes last and only when known, so every other key keeps its place and format.
  const std::string mfu = m.mfu ? ", \"mfu\": " + number(*m.mfu, "{:.4g}") : std::string();
  return fmt::format(
      "{{\"step\": {}, \"loss\": {}, \"lr\": {}, \"grad_norm\": {}, \"tokens_per_s\": {}, "
      "\"step_ms\": {}, \"bubble\": {}, \"tokens\": {}, \"elapsed_s\": {}, \"time\": {}, "
      "\"restarts\": {}{}}}",
      m.step, number(m.loss, "{:.9g}"), number(m.lr, "{:.9g}"), number(m.grad_norm, "{:.9g}"),
      number(m.tokens_per_s, "{:.1f}"), number(m.step_ms, "{:.3f}"), number(m.bubble, "{:.4f}"),
      m.tokens, number(m.elapsed_s, "{:.3f}"), number(m.time, "{:.3f}"), m.restarts, mfu);
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
  // Percent: one decimal from 1% up (41.3%), two significant digits below (0.052%), which a
  // small model on the CPU reaches.
  std::string mfu;
  if (m.mfu) {
    const double percent = *m.mfu * 100;
    mfu = std::fabs(percent) >= 1 ? fmt::format(" | MFU {:.1f}%", percent)
                                  : fmt::format(" | MFU {:.2g}%", percent);
  }
  return fmt::format(
      "step {:>{}}/{} | loss {:.4f} | lr {:.2e} | {} tok/s | {:.0f} ms | bubble {:.2f}{} | ETA {}",
      m.step, width, total_steps, m.loss, m.lr, rate, m.step_ms, m.bubble, mfu,
      format_duration(eta_seconds));
}

}  // namespace conveyor::pipeline
