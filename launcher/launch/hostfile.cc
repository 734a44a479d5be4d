#include "launcher/launch/hostfile.h"

#include <fmt/format.h>

#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/file_io.h"

namespace conveyor::cli {

namespace {

constexpr int kMaxSlots = 1024;

int parse_slots(const std::string& text, const std::string& where) {
  size_t used = 0;
  int slots = 0;
  try {
    slots = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty() || slots < 1 || slots > kMaxSlots)
    throw Error(ErrorKind::kUsage, fmt::format("{}: slots '{}' is not a whole number in 1..{}",
                                               where, text, kMaxSlots));
  return slots;
}

bool valid_host(const std::string& host) {
  if (host.empty() || host.size() > 253 || host[0] == '-') return false;  // '-': an ssh option
  for (char c : host) {
    const bool ok =
        std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' || c == '@';
    if (!ok) return false;
  }
  return true;
}

// The machine a hostfile entry reaches: the name after any "user@", in lower case, since
// host names are case-insensitive (N1 and n1 are one host; two supervisors there would
// give two ranks one LOCAL_RANK).
std::string machine_of(const std::string& host) {
  std::string name = host.substr(host.find('@') + 1);
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

void add(std::vector<HostSlots>& hosts, std::set<std::string>& seen, HostSlots h,
         const std::string& where) {
  if (!valid_host(h.host))
    throw Error(ErrorKind::kUsage, fmt::format("{}: '{}' is not a host name", where, h.host),
                "use a host name or address that ssh accepts");
  if (!seen.insert(machine_of(h.host)).second)
    throw Error(ErrorKind::kUsage, fmt::format("{}: host {} is listed twice", where, h.host),
                "list each host once, with all its ranks in slots=N");
  hosts.push_back(std::move(h));
}

}  // namespace

std::vector<HostSlots> read_hostfile(const std::string& path) {
  // Read as every input is (common/file_io.h): a FIFO is refused, never blocked on.
  std::istringstream in(read_input_file(path, "--hostfile"));
  std::vector<HostSlots> hosts;
  std::set<std::string> seen;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string where = fmt::format("{}:{}", path, number);
    line = line.substr(0, line.find('#'));
    std::istringstream words(line);
    HostSlots h;
    if (!(words >> h.host)) continue;  // blank or comment
    std::string word;
    while (words >> word) {
      if (word.rfind("slots=", 0) != 0)
        throw Error(ErrorKind::kUsage,
                    fmt::format("{}: '{}' is not slots=N (a line is 'HOST slots=N')", where, word));
      h.slots = parse_slots(word.substr(6), where);
    }
    add(hosts, seen, std::move(h), where);
  }
  if (hosts.empty())
    throw Error(ErrorKind::kUsage, fmt::format("--hostfile {} lists no host", path),
                "give one 'HOST slots=N' line per host");
  return hosts;
}

std::vector<HostSlots> parse_hosts(const std::string& spec) {
  std::vector<HostSlots> hosts;
  std::set<std::string> seen;
  const std::string where = fmt::format("--hosts '{}'", spec);
  size_t start = 0;
  while (start <= spec.size()) {
    size_t comma = spec.find(',', start);
    if (comma == std::string::npos) comma = spec.size();
    const std::string item = spec.substr(start, comma - start);
    HostSlots h;
    const size_t colon = item.rfind(':');
    h.host = item.substr(0, colon);
    if (colon != std::string::npos) h.slots = parse_slots(item.substr(colon + 1), where);
    add(hosts, seen, std::move(h), where);
    start = comma + 1;
  }
  return hosts;
}

}  // namespace conveyor::cli
