// Per-step metrics: the JSON-lines file of the contract and the terminal progress line.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

namespace conveyor::pipeline {

struct StepMetrics {
  int64_t step = 0;  // 1-based: the number of optimizer steps done
  float loss = 0;
  float lr = 0;
  double grad_norm = 0;
  double tokens_per_s = 0;
  double step_ms = 0;
  double bubble = 0;     // idle / step time on the worst stage; 0 with one stage
  int64_t tokens = 0;    // tokens trained on so far, over the whole run (resumes included)
  double elapsed_s = 0;  // seconds since this process started training
  double time = 0;       // seconds since the Unix epoch when the step ended
  int restarts = 0;      // times the job was restarted before this step (CONVEYOR_RESTART_COUNT)
  // Model FLOPs utilisation, a fraction (train/mfu.h); none when no peak is known.
  std::optional<double> mfu;
};

// A validation row: the loss on --val-data after optimizer step `step`.
struct ValidationMetrics {
  int64_t step = 0;
  double val_loss = 0;
  int64_t windows = 0;  // windows of T tokens scored
  double elapsed_s = 0;
  double time = 0;
};

// One JSON object per line. A step row:
//   {"step","loss","lr","grad_norm","tokens_per_s","step_ms","bubble","tokens","elapsed_s",
//    "time","restarts"} and, when a peak is known, "mfu" last (4 significant digits; absent
//    otherwise);
// and, with --val-data, a validation row {"step","val_loss","val_windows","elapsed_s","time"}.
// loss and val_loss with %.9g so the value round-trips exactly. A number that is not finite
// is written as null, so every line is valid JSON. Appends (a resumed run continues the file).
class MetricsWriter {
 public:
  MetricsWriter() = default;
  // Appends to `path`. With `resumed_at` (a resumed or restarted run), first removes the rows
  // past that step, which the run will write again, so no step appears twice. Throws
  // Error(kUsage) when the file cannot be opened.
  explicit MetricsWriter(const std::string& path, std::optional<int64_t> resumed_at = {});
  ~MetricsWriter();
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;
  // Write and flush one line; no-op without a file. Throw Error(kRuntime) when writing fails.
  void write(const StepMetrics& m);
  void write(const ValidationMetrics& m);

 private:
  void write_line(const std::string& line);
  std::FILE* file_ = nullptr;
};

std::string format_metrics_line(const StepMetrics& m);
std::string format_metrics_line(const ValidationMetrics& m);

// "step   40/300 | loss 2.4312 | lr 2.9e-03 | 11.2k tok/s | 183 ms | bubble 0.12 | ETA 47s",
// with " | MFU 41.3%" before the ETA when m.mfu is known (two significant digits below 1%).
std::string progress_line(const StepMetrics& m, int64_t total_steps, double eta_seconds);

// "1h02m", "3m05s", "47s"
std::string format_duration(double seconds);

}  // namespace conveyor::pipeline
