#include "tests/integration/pipeline/pipeline_test_util.h"

#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace conveyor::test {

RunResult train_on(int stages, const std::vector<std::string>& train_args, double timeout_s) {
  std::vector<std::string> args;
  if (stages > 1) args = {"launch", "--nproc", std::to_string(stages), "--", "conveyor"};
  args.push_back("train");
  args.insert(args.end(), train_args.begin(), train_args.end());
  args = with(args, {"--stages", std::to_string(stages)});
  return run_conveyor(args, {}, timeout_s);
}

std::string strip_rank_prefix(const std::string& line, int* rank) {
  *rank = -1;
  if (line.rfind("[rank ", 0) != 0) return line;
  const auto close = line.find("] ");
  if (close == std::string::npos) return line;
  *rank = std::stoi(line.substr(6, close - 6));
  return line.substr(close + 2);
}

std::string sample_text(const std::string& output) {
  std::istringstream in(output);
  std::string line;
  int sample_rank = -2;  // not yet seen
  std::vector<std::string> lines;
  while (std::getline(in, line)) {
    int rank = -1;
    std::string text = strip_rank_prefix(line, &rank);
    if (sample_rank == -2) {
      if (text.rfind("--- sample (", 0) == 0) sample_rank = rank;
      continue;
    }
    if (rank == sample_rank) lines.push_back(text);
  }
  // The sample ends at the last "---" line of that rank (the text itself may hold "---").
  while (!lines.empty() && lines.back() != "---") lines.pop_back();
  if (lines.empty()) return "";
  lines.pop_back();
  std::string joined;
  for (size_t i = 0; i < lines.size(); ++i) joined += (i ? "\n" : "") + lines[i];
  return joined;
}

}  // namespace conveyor::test
