// N fake hosts for multi-host launch tests: Linux network namespaces joined by a bridge,
// each running its own sshd on its own address (tests/integration/launch/netns_hosts.sh
// does the work; see its header for the layout).
//
// Contract:
// - The constructor returns only once every host's sshd serves connections from host 0 and
//   a root login with ssh_config() from host 0 works; otherwise it fails the test
//   (REQUIRE), printing the script's output, and leaves nothing behind.
// - The destructor always tears down: every process in the namespaces is SIGKILLed, sshd
//   included, and the namespaces are deleted. What still ran besides sshd is printed
//   ("netns_hosts: leftover in NS: ..."); tests that care check leftover_processes() first.
// - Needs root, /usr/sbin/sshd, ssh, ssh-keygen and `ip netns`: tests call unavailable()
//   first and, when it gives a reason, WARN("SKIPPED: " + reason) and return.
// - Not thread-safe; several fixtures (also in other processes) may exist at once.
#pragma once

#include <string>
#include <vector>

#include "tests/test_util.h"

namespace conveyor::test {

class NetnsHosts {
 public:
  // Why this machine cannot run the fixture (not root, no sshd, no `ip netns`, network
  // namespaces not permitted), or empty when it can.
  static std::string unavailable();

  explicit NetnsHosts(int n);
  ~NetnsHosts();
  NetnsHosts(const NetnsHosts&) = delete;
  NetnsHosts& operator=(const NetnsHosts&) = delete;

  int size() const { return static_cast<int>(addresses_.size()); }
  const std::string& address(int i) const { return addresses_.at(static_cast<size_t>(i)); }
  const std::string& netns(int i) const { return netns_.at(static_cast<size_t>(i)); }
  std::string ssh_config() const { return (dir_ / "ssh_config").string(); }
  std::string hostfile() const { return (dir_ / "hostfile").string(); }
  // The fixture's directory (keys, configs, sshd logs sshd.<i>.log, hosts.env).
  std::string dir() const { return dir_.str(); }

  // Runs argv inside host i's namespace (through `ip netns exec`), like run_program.
  RunResult run_in(int i, const std::vector<std::string>& argv,
                   const std::vector<std::string>& env = {}, double timeout_s = 120) const;

  // Processes running in any of the hosts' namespaces, except sshd's own (the listener
  // and its per-session processes, whose exit lags the client's): "ns pid cmdline" each.
  std::vector<std::string> leftover_processes() const;

 private:
  TempDir dir_;
  std::vector<std::string> addresses_;
  std::vector<std::string> netns_;
};

}  // namespace conveyor::test

// Skips the calling test case when the fixture cannot run here (ctest reports "SKIPPED:"
// output as skipped). Needs <catch2/catch.hpp>.
#define SKIP_WITHOUT_NETNS_HOSTS()                                                  \
  if (const auto why = ::conveyor::test::NetnsHosts::unavailable(); !why.empty()) { \
    WARN("SKIPPED: " << why);                                                       \
    return;                                                                         \
  }
