// Chrome / Perfetto trace writer shared by the schedule simulator and the executor.
//
// Output: {"traceEvents": [...], "displayTimeUnit": "ms"} with one complete event
// (ph "X", pid 0, tid = stage) per span, plus one thread_name metadata event per stage
// ("stage N"), so chrome://tracing and ui.perfetto.dev show one row per stage.
//
// Blocking: writes the whole file with checkpoint::write_file_atomic (to `path`.tmp, fsynced,
// renamed into place), so a reader never sees half a trace. Throws Error(kUsage) naming the
// path when it cannot be written.
#pragma once

#include <string>
#include <vector>

namespace conveyor::pipeline {

struct Span {
  int stage;             // becomes tid
  std::string name;      // e.g. "F3", "BW3.1"
  std::string category;  // e.g. "forward"
  double start_us;       // from the start of the trace
  double dur_us;
};

void write_chrome_trace(const std::string& path, const std::vector<Span>& spans);

}  // namespace conveyor::pipeline
