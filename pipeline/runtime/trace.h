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
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "pipeline/schedule/span.h"

namespace conveyor::pipeline {

// The clock of every span, in microseconds since the Unix epoch: the wall clock read once per
// process, advanced by the monotonic clock. The ranks of one host thus line up on one time
// axis, and a step of the wall clock during the run (NTP, an administrator) moves no span and
// gives no negative or huge duration, so neither does the bubble computed from them.
// The same clock at a steady_clock time point (e.g. when the transport saw a transfer end).
inline double trace_clock_us(std::chrono::steady_clock::time_point t) {
  static const auto wall_at_start = std::chrono::system_clock::now();
  static const auto steady_at_start = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::micro>(wall_at_start.time_since_epoch() +
                                                   (t - steady_at_start))
      .count();
}
inline double trace_clock_us() {
  return trace_clock_us(std::chrono::steady_clock::now());
}

void write_chrome_trace(const std::string& path, const std::vector<Span>& spans);

// Where a rank streams its own spans while a run goes: trace.json -> trace.rank-3.json.
std::string trace_part_path(const std::string& path, int rank);

// A rank's trace as the run goes: each append() adds the spans of one step to
// trace_part_path(path, rank) and flushes, so a run that fails or is killed leaves every
// finished step's spans, and no span stays in memory. The file is Chrome's JSON Array Format
// ("[", then one event per line, each followed by ","), which chrome://tracing and
// ui.perfetto.dev read without the closing bracket. A run that ends cleanly merges the parts
// into the trace (trace_merge.h) and then remove()s them.
// The part file is opened as every output is (common/file_io.h): a link or FIFO planted at
// its path is refused with Error(kUsage), never written through; remove() deletes only the
// file this stream created. Throws Error(kRuntime) when a write fails.
class TraceStream {
 public:
  TraceStream(const std::string& path, int rank);
  ~TraceStream();
  TraceStream(const TraceStream&) = delete;
  TraceStream& operator=(const TraceStream&) = delete;

  void append(const std::vector<Span>& spans);
  // Flushes and closes the part file (appends are ignored afterwards).
  void close();
  // Closes and deletes the part file, if the name still names the file this stream created.
  void remove();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  bool started_ = false;             // the opening bracket is written
  uint64_t device_ = 0, inode_ = 0;  // of the file created, so remove() deletes only it
  std::set<int> named_rows_;         // rows whose thread_name event is written
};

// Writes a trace merged from rank parts (TraceStream files), streamed: the parts' bytes come
// in pieces, in rank order, and go to a temporary file beside `path`, which commit() renames
// into place; nothing is held in memory but one piece. The result is the JSON Object Format
// write_chrome_trace writes ({"traceEvents": [...], "displayTimeUnit": "ms"}).
class MergedTraceWriter {
 public:
  // Throws Error(kUsage) when the temporary file cannot be created.
  explicit MergedTraceWriter(const std::string& path);
  ~MergedTraceWriter();  // removes the temporary file unless committed
  MergedTraceWriter(const MergedTraceWriter&) = delete;
  MergedTraceWriter& operator=(const MergedTraceWriter&) = delete;

  // The next part starts (its first bytes are its opening "[\n").
  void begin_part();
  // The next bytes of the current part, as its file holds them.
  void add(std::string_view bytes);
  // Closes the array, fsyncs and renames the file into place.
  void commit();

 private:
  void write(std::string_view bytes);
  std::string path_, tmp_;
  int fd_ = -1;
  size_t skip_ = 0;   // bytes of the current part's opening still to drop
  std::string held_;  // the last ",\n" seen: written only if another event follows
};

}  // namespace conveyor::pipeline
