#include "checkpoint/layout.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <functional>

namespace conveyor::checkpoint {

std::string step_dir_name(int64_t step) {
  return fmt::format("step_{:09d}", step);
}
std::string temp_dir_name(int64_t step) {
  return kTempPrefix + step_dir_name(step);
}
std::string shard_file_name(int shard) {
  return fmt::format("stage_{:05d}.h5", shard);
}
std::string sidecar_file_name(int shard) {
  return fmt::format("stage_{:05d}.json", shard);
}

std::optional<int64_t> parse_step_dir_name(const std::string& name) {
  static const std::string prefix = "step_";
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) {
    return std::nullopt;
  }
  const char* begin = name.data() + prefix.size();
  const char* end = name.data() + name.size();
  if (!std::all_of(begin, end,
                   [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    return std::nullopt;
  }
  int64_t step = 0;
  auto [ptr, ec] = std::from_chars(begin, end, step);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return step;
}

std::vector<int64_t> list_committed_steps(const std::filesystem::path& root) {
  std::vector<int64_t> steps;
  std::error_code ec;
  if (!std::filesystem::is_directory(root, ec)) return steps;
  for (const auto& entry : std::filesystem::directory_iterator(root)) {
    if (!entry.is_directory()) continue;
    if (auto step = parse_step_dir_name(entry.path().filename().string())) steps.push_back(*step);
  }
  std::sort(steps.begin(), steps.end(), std::greater<>());
  return steps;
}

}  // namespace conveyor::checkpoint
