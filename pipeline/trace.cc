#include "pipeline/trace.h"

#include <cstdio>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

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

  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) {
      throw Error(ErrorKind::kUsage, fmt::format("cannot write trace file '{}'", tmp),
                  "check that the folder exists and is writable");
    }
    out << doc.dump() << '\n';
    out.close();
    if (!out) {
      std::remove(tmp.c_str());
      throw Error(ErrorKind::kUsage, fmt::format("writing trace file '{}' failed", tmp),
                  "check free disk space and permissions");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(ErrorKind::kUsage, fmt::format("cannot move trace to '{}'", path),
                "check that the path is writable and not a folder");
  }
}

}  // namespace conveyor::pipeline
