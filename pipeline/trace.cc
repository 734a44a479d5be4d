#include "pipeline/trace.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "checkpoint/file_util.h"
#include "common/error.h"

namespace conveyor::pipeline {

namespace {

nlohmann::json thread_name_event(const Span& s) {
  return {{"name", "thread_name"},
          {"ph", "M"},
          {"pid", 0},
          {"tid", s.stage},
          {"args", {{"name", s.row.empty() ? "stage " + std::to_string(s.stage) : s.row}}}};
}

nlohmann::json span_event(const Span& s) {
  return {{"name", s.name}, {"cat", s.category}, {"ph", "X"},      {"pid", 0},
          {"tid", s.stage}, {"ts", s.start_us},  {"dur", s.dur_us}};
}

}  // namespace

void write_chrome_trace(const std::string& path, const std::vector<Span>& spans) {
  nlohmann::json events = nlohmann::json::array();
  std::set<int> rows;
  for (const Span& s : spans)
    if (rows.insert(s.stage).second) events.push_back(thread_name_event(s));
  for (const Span& s : spans) events.push_back(span_event(s));
  const nlohmann::json doc = {{"traceEvents", events}, {"displayTimeUnit", "ms"}};

  try {
    checkpoint::write_file_atomic(path, doc.dump() + "\n");
  } catch (const Error& e) {
    // The path comes from --trace: a folder that is missing or not writable is a usage error.
    throw Error(ErrorKind::kUsage,
                fmt::format("cannot write trace file '{}': {}", path, e.message()),
                "check that the folder exists and is writable");
  }
}

}  // namespace conveyor::pipeline

namespace conveyor::pipeline {

std::string trace_part_path(const std::string& path, int rank) {
  const std::filesystem::path p(path);
  const std::string part =
      fmt::format("{}.rank-{}{}", p.stem().string(), rank, p.extension().string());
  return (p.parent_path() / part).string();
}

TraceStream::TraceStream(const std::string& path, int rank) : path_(trace_part_path(path, rank)) {
  file_ = std::fopen(path_.c_str(), "w");
  if (!file_) {
    throw Error(ErrorKind::kUsage,
                fmt::format("cannot create trace file '{}': {}", path_, std::strerror(errno)),
                "check that the folder of --trace exists and is writable");
  }
  append({});  // the opening bracket
}

TraceStream::~TraceStream() {
  if (file_) std::fclose(file_);
}

void TraceStream::append(const std::vector<Span>& spans) {
  if (!file_) return;
  std::string text = ftell(file_) == 0 ? "[\n" : "";
  for (const Span& s : spans) {
    if (named_rows_.insert(s.stage).second) text += thread_name_event(s).dump() + ",\n";
    text += span_event(s).dump() + ",\n";
  }
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size() || std::fflush(file_) != 0) {
    throw Error(ErrorKind::kRuntime,
                fmt::format("writing trace file '{}' failed: {}", path_, std::strerror(errno)));
  }
}

void TraceStream::remove() {
  if (file_) std::fclose(file_);
  file_ = nullptr;
  std::error_code ignored;
  std::filesystem::remove(path_, ignored);
}

}  // namespace conveyor::pipeline
