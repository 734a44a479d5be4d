// One action on one row of a timeline: what the schedule simulator predicts
// (schedule_grid.h) and the executor records (pipeline/runtime/trace.h writes both as a
// Chrome / Perfetto trace).
#pragma once

#include <string>

namespace conveyor::pipeline {

struct Span {
  int stage;             // the row: becomes tid
  std::string name;      // e.g. "F3", "BW3.1"
  std::string category;  // e.g. "forward"
  double start_us;       // from the start of the trace
  double dur_us;
  std::string row = {};  // the row's name; empty: "stage <stage>"
};

}  // namespace conveyor::pipeline
