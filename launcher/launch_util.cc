#include "launcher/launch_util.h"

#include <unistd.h>

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "common/error.h"

namespace conveyor::cli {

std::string random_token() {
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  unsigned char bytes[16] = {};
  urandom.read(reinterpret_cast<char*>(bytes), sizeof bytes);
  CONVEYOR_CHECK(urandom.gcount() == sizeof bytes, "cannot read /dev/urandom for a job secret");
  std::string hex;
  for (unsigned char b : bytes) hex += fmt::format("{:02x}", b);
  return hex;
}

std::string self_exe() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  CONVEYOR_CHECK(n > 0, "cannot find the conveyor binary (/proc/self/exe)");
  return std::string(buf, static_cast<size_t>(n));
}

std::string shell_quote(const std::string& word) {
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::vector<std::string> split_command(const std::string& command, const char* flag) {
  std::istringstream in(command);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  CONVEYOR_REQUIRE(!words.empty(), "{} is empty; give a command such as ssh", flag);
  return words;
}

}  // namespace conveyor::cli
