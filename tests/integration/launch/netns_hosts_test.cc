// The netns hosts fixture itself: ssh from host 0 lands in the addressed host's namespace
// (itself included), processes started there are seen as leftovers and are gone with the
// fixture, and two fixtures at once get distinct names and subnets.
#include <catch2/catch.hpp>

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <set>
#include <sstream>

#include "tests/integration/launch/hosts_fixture.h"

using namespace conveyor::test;

namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Names `ip netns list` shows (each line is "NAME" or "NAME (id: N)").
std::set<std::string> namespaces_now() {
  std::set<std::string> names;
  for (const auto& line :
       lines_of(run_program({"ip", "netns", "list"}, {}, 10).output, /*skip_empty=*/true))
    names.insert(line.substr(0, line.find(' ')));
  return names;
}

std::string env_value(const NetnsHosts& hosts, const std::string& key) {
  for (const auto& line : lines_of(read_file(hosts.dir() + "/hosts.env"), /*skip_empty=*/true))
    if (line.rfind(key + "=", 0) == 0) return line.substr(key.size() + 1);
  return "";
}

// Whether pid is a live process. A zombie is not: an orphan's zombie lingers until init
// reaps it, and some inits (this VM's, for one) never do, while kill(pid, 0) succeeds on it.
bool running(pid_t pid) {
  if (kill(pid, 0) != 0) return errno != ESRCH;
  std::istringstream stat(read_file("/proc/" + std::to_string(pid) + "/stat"));
  std::string field, state;
  stat >> field >> field >> state;  // pid, (comm), state; sleep's comm has no spaces
  return !state.empty() && state != "Z";
}

}  // namespace

TEST_CASE("netns hosts: ssh from host 0 runs the command in the addressed host", "[launch]") {
  SKIP_WITHOUT_NETNS_HOSTS();
  NetnsHosts hosts(2);
  REQUIRE(hosts.size() == 2);
  CHECK(read_file(hosts.hostfile()) ==
        hosts.address(0) + " slots=2\n" + hosts.address(1) + " slots=2\n");
  for (int target : {0, 1}) {
    const int other = 1 - target;
    // `ip netns identify` names the namespace the command runs in; the addresses prove it
    // has the target's network and no other.
    const auto r = hosts.run_in(0,
                                {"ssh", "-F", hosts.ssh_config(), hosts.address(target),
                                 "ip netns identify; ip -4 -o addr show"},
                                {}, 30);
    INFO("ssh to host " << target << ":\n" << r.output);
    REQUIRE(r.exit_code == 0);
    const auto lines = lines_of(r.output, /*skip_empty=*/true);
    REQUIRE(!lines.empty());
    CHECK(lines.front() == hosts.netns(target));
    CHECK(contains(r.output, " " + hosts.address(target) + "/24 "));
    CHECK_FALSE(contains(r.output, " " + hosts.address(other) + "/24 "));
  }
  CHECK(hosts.leftover_processes().empty());
}

TEST_CASE("netns hosts: the fixture kills what was left in its hosts and deletes them",
          "[launch]") {
  SKIP_WITHOUT_NETNS_HOSTS();
  pid_t pid = 0;
  std::vector<std::string> names;
  {
    NetnsHosts hosts(2);
    names = {hosts.netns(0), hosts.netns(1), env_value(hosts, "NETNS_SWITCH")};
    REQUIRE(!names.back().empty());
    // Detached, stdio closed: the ssh session ends at once and leaves `sleep` behind.
    const auto r = hosts.run_in(0,
                                {"ssh", "-F", hosts.ssh_config(), hosts.address(1),
                                 "setsid nohup sleep 30 </dev/null >/dev/null 2>&1 & echo $!"},
                                {}, 30);
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    const auto lines = lines_of(r.output, /*skip_empty=*/true);
    REQUIRE(!lines.empty());
    pid = static_cast<pid_t>(std::stol(lines.back()));
    REQUIRE(running(pid));
    const auto left = hosts.leftover_processes();
    INFO("leftovers: " << left.size());
    CHECK(left ==
          std::vector<std::string>{hosts.netns(1) + " " + std::to_string(pid) + " sleep 30"});
    const auto ns_now = namespaces_now();
    for (const auto& name : names) CHECK(ns_now.count(name) == 1);
  }
  const auto ns_after = namespaces_now();
  for (const auto& name : names) CHECK(ns_after.count(name) == 0);
  CHECK_FALSE(running(pid));
}

TEST_CASE("netns hosts: two fixtures at once get distinct namespaces and subnets", "[launch]") {
  SKIP_WITHOUT_NETNS_HOSTS();
  NetnsHosts a(1);
  NetnsHosts b(1);
  CHECK(a.netns(0) != b.netns(0));
  const auto subnet = [](const std::string& ip) { return ip.substr(0, ip.rfind('.')); };
  CHECK(subnet(a.address(0)) != subnet(b.address(0)));
  // Separate networks: a's host cannot reach b's sshd.
  const auto r = a.run_in(
      0, {"ssh", "-F", a.ssh_config(), "-o", "ConnectTimeout=1", b.address(0), "true"}, {}, 30);
  INFO(r.output);
  CHECK(r.exit_code == 255);
}
