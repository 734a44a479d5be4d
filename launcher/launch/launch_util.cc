#include "launcher/launch/launch_util.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "common/exit_code.h"

extern char** environ;

namespace conveyor::cli {

namespace {

volatile sig_atomic_t g_launch_signal = 0;
void on_launch_signal(int sig) {
  g_launch_signal = sig;
}

}  // namespace

void catch_launch_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_launch_signal;
  for (int sig : {SIGINT, SIGTERM, SIGUSR1}) sigaction(sig, &sa, nullptr);
}

int launch_signal() {
  return g_launch_signal;
}

void note_launch_signal(int sig) {
  g_launch_signal = sig;
}

bool is_preemption_signal(int sig) {
  return sig == SIGTERM || sig == SIGUSR1;
}

int job_exit_code(const std::vector<int>& codes, bool preempting, int result) {
  auto all = [&](int code) {
    return std::all_of(codes.begin(), codes.end(), [code](int c) { return c == code; });
  };
  if (all(0)) return 0;
  if (preempting && all(kExitPreempted)) return kExitPreempted;
  return result;
}

bool worth_restarting(int exit_code) {
  return exit_code != 0 && exit_code != kExitUsage && exit_code != kExitPreempted &&
         launch_signal() == 0;
}

void die_with_parent(pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(137);  // it died before prctl took effect
}

std::vector<std::string> environment_without(std::initializer_list<const char*> names) {
  std::vector<std::string> out;
  for (char** e = environ; *e; ++e) {
    const std::string entry(*e);
    const std::string name = entry.substr(0, entry.find('='));
    bool dropped = false;
    for (const char* n : names) dropped = dropped || name == n;
    if (!dropped) out.push_back(entry);
  }
  return out;
}

void LineBuffer::feed(std::string_view bytes, bool last,
                      const std::function<void(std::string_view)>& line) {
  partial_.append(bytes);
  size_t start = 0, nl;
  while ((nl = partial_.find('\n', start)) != std::string::npos) {
    line(std::string_view(partial_).substr(start, nl - start));
    start = nl + 1;
  }
  partial_.erase(0, start);
  if (last && !partial_.empty()) {
    line(partial_);
    partial_.clear();
  }
}

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
