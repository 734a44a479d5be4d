#include "pipeline/schedule/schedule_grid.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace conveyor::pipeline {
namespace {

const char* category(Op op) {
  switch (op) {
    case Op::kForward:
      return "forward";
    case Op::kBackward:
      return "backward";
    case Op::kBackwardInput:
      return "backward-input";
    case Op::kBackwardWeight:
      return "backward-weight";
  }
  return "?";
}

std::string row_name(int stage) {
  return fmt::format("stage {}", stage);
}

// Draws rows of cells, left-aligned in columns as wide as the widest cell plus one space.
std::string draw(const std::vector<std::vector<std::string>>& rows, const std::string& corner,
                 const std::vector<std::string>& header) {
  size_t width = 1;
  for (const auto& row : rows)
    for (const auto& cell : row) width = std::max(width, cell.size());
  width += 1;
  size_t name_width = corner.size();
  for (size_t st = 0; st < rows.size(); ++st)
    name_width = std::max(name_width, row_name(static_cast<int>(st)).size());

  std::string out = fmt::format("{:<{}} |", corner, name_width);
  for (const auto& h : header) out += fmt::format(" {:<{}}", h.size() < width ? h : "", width - 1);
  while (!out.empty() && out.back() == ' ') out.pop_back();
  out += '\n';
  for (size_t st = 0; st < rows.size(); ++st) {
    std::string line = fmt::format("{:<{}} |", row_name(static_cast<int>(st)), name_width);
    for (const auto& cell : rows[st]) line += fmt::format(" {:<{}}", cell, width - 1);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + '\n';
  }
  return out;
}

}  // namespace

std::string action_label(const Schedule& s, const Action& a) {
  if (s.virtual_stages > 1) return fmt::format("{}{}.{}", op_name(a.op), a.microbatch, a.chunk);
  return fmt::format("{}{}", op_name(a.op), a.microbatch);
}

std::string render_grid(const Schedule& s, const SimulationResult& r) {
  double unit = 0;
  for (const auto& stage : r.times)
    for (const auto& t : stage)
      if (t.end > t.start && (unit == 0 || t.end - t.start < unit)) unit = t.end - t.start;
  if (unit == 0) unit = 1;
  const int columns = static_cast<int>(std::lround(r.makespan / unit));

  std::vector<std::vector<std::string>> rows(s.stages, std::vector<std::string>(columns, "."));
  for (int st = 0; st < s.stages && st < static_cast<int>(r.times.size()); ++st) {
    for (size_t i = 0; i < s.actions[st].size() && i < r.times[st].size(); ++i) {
      const int begin = static_cast<int>(std::lround(r.times[st][i].start / unit));
      const int end = std::max(begin + 1, static_cast<int>(std::lround(r.times[st][i].end / unit)));
      for (int c = begin; c < end && c < columns; ++c) {
        rows[st][c] = c == begin ? action_label(s, s.actions[st][i]) : "-";
      }
    }
  }
  std::vector<std::string> header;
  for (int c = 0; c < columns; ++c) header.push_back(std::to_string(c));
  return draw(rows, unit == 1 ? "time" : fmt::format("time x{:g}", unit), header);
}

std::string render_step_grid(const Schedule& s, const std::vector<std::pair<int, int>>& marked) {
  size_t columns = 0;
  for (const auto& a : s.actions) columns = std::max(columns, a.size());
  std::vector<std::vector<std::string>> rows(s.actions.size());
  for (size_t st = 0; st < s.actions.size(); ++st) {
    for (size_t i = 0; i < s.actions[st].size(); ++i) {
      std::string label = action_label(s, s.actions[st][i]);
      const bool mark =
          std::find(marked.begin(), marked.end(),
                    std::pair<int, int>(static_cast<int>(st), static_cast<int>(i))) != marked.end();
      rows[st].push_back(mark ? "[" + label + "]" : label);
    }
  }
  std::vector<std::string> header;
  for (size_t c = 0; c < columns; ++c) header.push_back(std::to_string(c));
  return draw(rows, "step", header);
}

std::vector<Span> simulation_spans(const Schedule& s, const SimulationResult& r,
                                   double us_per_unit) {
  std::vector<Span> spans;
  for (int st = 0; st < s.stages && st < static_cast<int>(r.times.size()); ++st) {
    for (size_t i = 0; i < s.actions[st].size() && i < r.times[st].size(); ++i) {
      const Action& a = s.actions[st][i];
      const ActionTime& t = r.times[st][i];
      spans.push_back({st, action_label(s, a), category(a.op), t.start * us_per_unit,
                       (t.end - t.start) * us_per_unit});
    }
  }
  return spans;
}

}  // namespace conveyor::pipeline
