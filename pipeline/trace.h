// Chrome / Perfetto trace writer shared by the schedule simulator and the executor.
//
// Output: {"traceEvents": [...], "displayTimeUnit": "ms"} with one complete event
// (ph "X", pid 0, tid = the span's row) per span, plus one thread_name metadata event per row
// (the span's row name, "stage N" when it has none), so chrome://tracing and
// ui.perfetto.dev show one row per stage (with data-parallel replicas: per rank, and one per
// rank for its gradient all-reduce).
//
// Blocking: writes the whole file with checkpoint::write_file_atomic (to `path`.tmp, fsynced,
// renamed into place), so a reader never sees half a trace. Throws Error(kUsage) naming the
// path when it cannot be written.
#pragma once

#include <chrono>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

namespace conveyor::pipeline {

struct Span {
  int stage;             // the row: becomes tid
  std::string name;      // e.g. "F3", "BW3.1"
  std::string category;  // e.g. "forward"
  double start_us;       // from the start of the trace
  double dur_us;
  std::string row = {};  // the row's name; empty: "stage <stage>"
};

// The clock of every span: microseconds since the Unix epoch (the system clock, so that the
// ranks of one host line up).
inline double trace_clock_us() {
  return std::chrono::duration<double, std::micro>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void write_chrome_trace(const std::string& path, const std::vector<Span>& spans);

// Where a rank streams its own spans while a run goes: trace.json -> trace.rank-3.json.
std::string trace_part_path(const std::string& path, int rank);

// A rank's trace as the run goes: each append() adds the spans of one step to
// trace_part_path(path, rank) and flushes, so a run that fails or is killed leaves every
// finished step's spans. The file is Chrome's JSON Array Format ("[", then one event per
// line, each followed by ","), which chrome://tracing and ui.perfetto.dev read without the
// closing bracket. A run that ends cleanly writes the merged trace with write_chrome_trace
// and then remove()s the parts.
// Throws Error(kUsage) when the file cannot be created, kRuntime when a write fails.
class TraceStream {
 public:
  TraceStream(const std::string& path, int rank);
  ~TraceStream();
  TraceStream(const TraceStream&) = delete;
  TraceStream& operator=(const TraceStream&) = delete;

  void append(const std::vector<Span>& spans);
  // Closes and deletes the part file.
  void remove();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  std::set<int> named_rows_;  // rows whose thread_name event is written
};

}  // namespace conveyor::pipeline
