#include "transport/bootstrap/hostlist.h"

#include <fmt/format.h>

#include <cctype>

#include "common/error.h"

namespace conveyor::transport {

namespace {

[[noreturn]] void malformed(std::string_view list, const std::string& what) {
  throw Error(ErrorKind::kUsage, fmt::format("host list '{}' is malformed: {}", list, what),
              "write it as Slurm does, e.g. node[1-3,7],login");
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

// "1-3,07,9" -> {"1","2","3","07","9"}: each range keeps the width of its first number.
std::vector<std::string> expand_ranges(std::string_view list, std::string_view ranges) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= ranges.size()) {
    size_t comma = ranges.find(',', start);
    if (comma == std::string_view::npos) comma = ranges.size();
    const std::string_view range = ranges.substr(start, comma - start);
    const size_t dash = range.find('-');
    const std::string_view lo = range.substr(0, dash);
    const std::string_view hi = dash == std::string_view::npos ? lo : range.substr(dash + 1);
    if (!all_digits(lo) || !all_digits(hi) || lo.size() > 9 || hi.size() > 9)
      malformed(list, fmt::format("'[{}]' holds '{}', not a number or a range A-B", ranges, range));
    const long a = std::stol(std::string(lo));
    const long b = std::stol(std::string(hi));
    if (a > b) malformed(list, fmt::format("the range '{}' runs backwards", range));
    if (static_cast<size_t>(b - a) >= kMaxHostlistHosts)
      malformed(list,
                fmt::format("the range '{}' names more than {} hosts", range, kMaxHostlistHosts));
    for (long v = a; v <= b; ++v) out.push_back(fmt::format("{:0{}}", v, lo.size()));
    start = comma + 1;
  }
  return out;
}

// One name with any number of bracket groups: "r[1-2]n[3,5]" -> r1n3 r1n5 r2n3 r2n5.
void expand_name(std::string_view list, std::string_view name, std::vector<std::string>& out) {
  if (name.empty()) malformed(list, "it has an empty host name");
  std::vector<std::string> partial = {""};
  size_t at = 0;
  while (at < name.size()) {
    const size_t open = name.find('[', at);
    const std::string_view text = name.substr(at, open - at);
    if (text.find(']') != std::string_view::npos) malformed(list, "a ']' has no '['");
    for (auto& p : partial) p += text;
    if (open == std::string_view::npos) break;
    const size_t close = name.find(']', open);
    if (close == std::string_view::npos) malformed(list, "a '[' is never closed");
    const std::string_view ranges = name.substr(open + 1, close - open - 1);
    if (ranges.find('[') != std::string_view::npos) malformed(list, "brackets are nested");
    const auto values = expand_ranges(list, ranges);
    if (partial.size() * values.size() > kMaxHostlistHosts)
      malformed(list, fmt::format("it names more than {} hosts", kMaxHostlistHosts));
    std::vector<std::string> next;
    next.reserve(partial.size() * values.size());
    for (const auto& p : partial)
      for (const auto& v : values) next.push_back(p + v);
    partial = std::move(next);
    at = close + 1;
  }
  if (out.size() + partial.size() > kMaxHostlistHosts)
    malformed(list, fmt::format("it names more than {} hosts", kMaxHostlistHosts));
  out.insert(out.end(), partial.begin(), partial.end());
}

}  // namespace

std::vector<std::string> expand_hostlist(std::string_view list) {
  if (list.empty()) malformed(list, "it is empty");
  std::vector<std::string> hosts;
  size_t start = 0;
  int depth = 0;
  for (size_t i = 0; i <= list.size(); ++i) {
    if (i < list.size() && list[i] == '[') ++depth;
    if (i < list.size() && list[i] == ']') --depth;
    if (i == list.size() || (list[i] == ',' && depth == 0)) {
      expand_name(list, list.substr(start, i - start), hosts);
      start = i + 1;
    }
  }
  return hosts;
}

}  // namespace conveyor::transport
