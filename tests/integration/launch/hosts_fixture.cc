#include "tests/integration/launch/hosts_fixture.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <map>
#include <sstream>

namespace conveyor::test {

namespace {

const std::string kScript =
    std::string(CONVEYOR_SOURCE_DIR) + "/tests/integration/launch/netns_hosts.sh";

// Run through bash, so a lost executable bit does not matter.
RunResult run_script(const std::vector<std::string>& args, double timeout_s) {
  std::vector<std::string> argv{"bash", kScript};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, {}, timeout_s);
}

bool in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "");
  std::string d;
  while (std::getline(dirs, d, ':'))
    if (!d.empty() && access((d + "/" + name).c_str(), X_OK) == 0) return true;
  return false;
}

// "KEY=value" lines of hosts.env (values the script writes need no unquoting).
std::map<std::string, std::string> read_env(const std::filesystem::path& file) {
  std::map<std::string, std::string> env;
  std::istringstream in(read_file(file));
  std::string line;
  while (std::getline(in, line)) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return env;
}

std::string cmdline_of(const std::string& pid) {
  std::string text = read_file("/proc/" + pid + "/cmdline");
  for (char& c : text)
    if (c == '\0') c = ' ';
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

bool is_sshd(const std::string& pid) {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/" + pid + "/exe", ec) == "/usr/sbin/sshd";
}

}  // namespace

std::string NetnsHosts::unavailable() {
  if (geteuid() != 0) return "the netns hosts fixture needs root (network namespaces, sshd)";
  if (access("/usr/sbin/sshd", X_OK) != 0)
    return "no /usr/sbin/sshd (apt-get install openssh-server)";
  for (const char* tool : {"ssh", "ssh-keygen", "ip", "unshare"})
    if (!in_path(tool)) return std::string("no ") + tool + " in PATH";
  if (run_program({"ip", "netns", "list"}, {}, 10).exit_code != 0) return "`ip netns` fails";
  // Root inside a container may still lack CAP_SYS_ADMIN over network namespaces.
  if (auto r = run_program({"unshare", "--net", "true"}, {}, 10); r.exit_code != 0)
    return "cannot create network namespaces: " + r.output;
  return "";
}

NetnsHosts::NetnsHosts(int n) {
  const auto up = run_script({"up", std::to_string(n), dir_.str()}, 60);
  {
    INFO("netns_hosts.sh up " << n << " " << dir_.str() << ":\n" << up.output);
    REQUIRE(up.exit_code == 0);  // a failed `up` has torn itself down
  }
  const auto env = read_env(dir_ / "hosts.env");
  for (int i = 0; i < n; ++i) {
    const auto ns = env.find("NETNS_HOST_" + std::to_string(i));
    const auto addr = env.find("NETNS_ADDR_" + std::to_string(i));
    if (ns == env.end() || addr == env.end()) break;
    netns_.push_back(ns->second);
    addresses_.push_back(addr->second);
  }
  if (size() != n) {
    // The destructor will not run for a constructor that throws: tear down here.
    run_script({"down", dir_.str()}, 60);
    FAIL("hosts.env lists " << size() << " hosts, not " << n);
  }
}

NetnsHosts::~NetnsHosts() {
  try {
    const auto down = run_script({"down", dir_.str()}, 60);
    if (!down.output.empty() || down.exit_code != 0)
      std::printf("netns_hosts.sh down (exit %d): %s\n", down.exit_code, down.output.c_str());
  } catch (const std::exception& e) {
    std::printf("netns_hosts.sh down failed to run: %s\n", e.what());
  }
}

RunResult NetnsHosts::run_in(int i, const std::vector<std::string>& argv,
                             const std::vector<std::string>& env, double timeout_s) const {
  std::vector<std::string> full{"ip", "netns", "exec", netns(i)};
  full.insert(full.end(), argv.begin(), argv.end());
  return run_program(full, env, timeout_s);
}

std::vector<std::string> NetnsHosts::leftover_processes() const {
  std::vector<std::string> out;
  for (const auto& ns : netns_) {
    const auto r = run_program({"ip", "netns", "pids", ns}, {}, 10);
    if (r.exit_code != 0) {  // reported, so a "nothing left" check cannot pass by accident
      out.push_back(ns + " ? `ip netns pids` failed: " + r.output);
      continue;
    }
    std::istringstream pids(r.output);
    std::string pid;
    while (pids >> pid) {
      if (is_sshd(pid)) continue;
      const auto cmd = cmdline_of(pid);
      if (cmd.empty()) continue;  // exited (or a kernel thread) since it was listed
      out.push_back(ns + " " + pid + " " + cmd);
    }
  }
  return out;
}

}  // namespace conveyor::test
