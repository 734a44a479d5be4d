#include "pipeline/trace.h"

#include <set>

#include <nlohmann/json.hpp>

#include "checkpoint/file_util.h"
#include "common/error.h"

namespace conveyor::pipeline {

void write_chrome_trace(const std::string& path, const std::vector<Span>& spans) {
  nlohmann::json events = nlohmann::json::array();
  std::set<int> stages;
  for (const Span& s : spans) stages.insert(s.stage);
  for (int st : stages) {
    events.push_back({{"name", "thread_name"},
                      {"ph", "M"},
                      {"pid", 0},
                      {"tid", st},
                      {"args", {{"name", "stage " + std::to_string(st)}}}});
  }
  for (const Span& s : spans) {
    events.push_back({{"name", s.name},
                      {"cat", s.category},
                      {"ph", "X"},
                      {"pid", 0},
                      {"tid", s.stage},
                      {"ts", s.start_us},
                      {"dur", s.dur_us}});
  }
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
