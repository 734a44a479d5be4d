// Per-step metrics: the JSON-lines file of the contract and the terminal progress line.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace conveyor::pipeline {

struct StepMetrics {
  int64_t step = 0;  // 1-based: the number of optimizer steps done
  float loss = 0;
  float lr = 0;
  double grad_norm = 0;
  double tokens_per_s = 0;
  double step_ms = 0;
  double bubble = 0;  // idle / step time on the worst stage; 0 with one stage
};

// One JSON object per line: {"step","loss","lr","grad_norm","tokens_per_s","step_ms","bubble"};
// loss with %.9g so the float round-trips exactly. Appends (a resumed run continues the file).
class MetricsWriter {
 public:
  MetricsWriter() = default;
  // Throws Error(kUsage) when the file cannot be opened.
  explicit MetricsWriter(const std::string& path);
  ~MetricsWriter();
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;
  // Writes and flushes one line; no-op without a file.
  void write(const StepMetrics& m);

 private:
  std::FILE* file_ = nullptr;
};

std::string format_metrics_line(const StepMetrics& m);

// "step   40/300 | loss 2.4312 | lr 2.9e-03 | 11.2k tok/s | 183 ms | bubble 0.12 | ETA 47s"
std::string progress_line(const StepMetrics& m, int64_t total_steps, double eta_seconds);

// "1h02m", "3m05s", "47s"
std::string format_duration(double seconds);

}  // namespace conveyor::pipeline
