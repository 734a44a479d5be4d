// `conveyor launch --hostfile` over real ssh into network-namespace hosts (hosts_fixture.h):
// the launcher runs on host 0, as on a login node that is also the first worker, and UCX
// carries activations between hosts over TCP.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/integration/launch/hosts_fixture.h"

using namespace conveyor::test;

namespace {

// `conveyor launch --hostfile ... --rsh 'ssh -F ...'` and the rest.
std::vector<std::string> launch_args(const NetnsHosts& hosts,
                                     const std::vector<std::string>& rest) {
  return with({CONVEYOR_BIN, "launch", "--hostfile", hosts.hostfile(), "--rsh",
               "ssh -F " + hosts.ssh_config()},
              rest);
}

// `train` flags of a tiny 4-layer model with `stages` stages, writing `metrics`.
std::vector<std::string> tiny_train(int stages, const std::string& metrics, int steps) {
  auto train = tiny_model_args({.layers = 4, .microbatches = 4, .micro_batch_size = 2});
  return with(train, {"--steps", std::to_string(steps), "--stages", std::to_string(stages),
                      "--metrics", metrics});
}

// Only TCP between "hosts": the namespaces share one kernel, where UCX would otherwise
// use shared memory.
const std::vector<std::string> kTcpOnly = {"UCX_TLS=tcp,self"};

// The pid of host `i`'s supervisor, as a shell expression run on host 0.
std::string supervisor_pid_of(const NetnsHosts& hosts, int i) {
  return fmt::format(
      "$(ip netns pids {} | while read p; do if tr '\\0' ' ' < /proc/$p/cmdline | grep -q -- "
      "'launch --nproc'; then echo $p; fi; done | head -1)",
      hosts.netns(i));
}

// A script for host 0: starts `launch` in the background, waits until `metrics` has `rows`
// lines (the job trains), runs `action` (the fault), then reports "launch exit N".
std::string fault_script(const std::string& launch, const std::string& metrics, int rows,
                         const std::string& action) {
  return fmt::format(
      "{} & launch=$!\n"
      "until [ -s {m} ] && [ $(wc -l < {m}) -ge {rows} ]; do sleep 0.02; done\n"
      "{action}\n"
      "wait $launch; echo \"launch exit $?\"\n",
      launch, fmt::arg("m", shell_quoted(metrics)), fmt::arg("rows", rows),
      fmt::arg("action", action));
}

}  // namespace

TEST_CASE("two hosts over ssh train four stages with the one-stage losses bit for bit",
          "[launch]") {
  SKIP_WITHOUT_NETNS_HOSTS();
  NetnsHosts hosts(2);
  TempDir dir;
  const auto one = (dir / "one.jsonl").string(), four = (dir / "four.jsonl").string();
  auto single = run_conveyor(with({"train"}, tiny_train(1, one, 4)));
  REQUIRE(single.exit_code == 0);
  auto r = hosts.run_in(
      0, launch_args(hosts, with({"--", "conveyor", "train"}, tiny_train(4, four, 4))), kTcpOnly);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(loss_texts(four) == loss_texts(one));
  CHECK(r.output.find("4 ranks on 2 hosts; rendezvous at " + hosts.address(0) + ":29500") !=
        std::string::npos);
  CHECK(hosts.leftover_processes().empty());
}

TEST_CASE("a host that dies mid-run ends the job on every host and is named", "[launch]") {
  SKIP_WITHOUT_NETNS_HOSTS();
  NetnsHosts hosts(2);
  TempDir dir;
  const auto metrics = (dir / "m.jsonl").string();
  const std::string launch = shell_command(
      launch_args(hosts, with({"--", "conveyor", "train"}, tiny_train(4, metrics, 100000))));
  // Host 1's supervisor is killed (its ranks die with it) once the job trains.
  const std::string script =
      fault_script(launch, metrics, 3, "kill -9 " + supervisor_pid_of(hosts, 1));
  const auto start = std::chrono::steady_clock::now();
  auto r = hosts.run_in(0, {"sh", "-c", script}, kTcpOnly, 120);
  INFO(r.output);
  INFO("seconds: "
       << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("launch exit 0") == std::string::npos);
  // The launcher names the host that failed; the survivors' supervisor names the rank the
  // job lost first, with its host address.
  CHECK(r.output.find("host " + hosts.address(1) + " (ranks 2-3) failed") != std::string::npos);
  CHECK(r.output.find(" at " + hosts.address(1) + ", pid ") != std::string::npos);
  CHECK(r.output.find("died") != std::string::npos);
  CHECK(hosts.leftover_processes().empty());
}

TEST_CASE("no rank survives on any host when the launcher is killed with SIGKILL", "[launch]") {
  SKIP_WITHOUT_NETNS_HOSTS();
  NetnsHosts hosts(2);
  TempDir dir;
  const std::string rank_cmd =
      fmt::format("echo $$ > {}/pid.$RANK; exec sleep 120", shell_quoted(dir.str()));
  const std::string launch = shell_command(launch_args(hosts, {"--", "sh", "-c", rank_cmd}));
  const std::string script = fmt::format(
      "cd {}\n{} & launch=$!\n"
      "until [ -s pid.0 ] && [ -s pid.1 ] && [ -s pid.2 ] && [ -s pid.3 ]; do sleep 0.05; done\n"
      "kill -9 $launch; wait $launch; echo \"launch exit $?\"\n",
      shell_quoted(dir.str()), launch);
  auto r = hosts.run_in(0, {"sh", "-c", script}, {}, 120);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("launch exit 137") != std::string::npos);
  // The sessions die with the launcher; each supervisor sees its stdin close and stops its
  // ranks. Wait for that (bounded), then nothing may be left.
  std::vector<std::string> left;
  for (int i = 0; i < 200; ++i) {
    left = hosts.leftover_processes();
    if (left.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (const auto& p : left) INFO(p);
  CHECK(left.empty());
}

TEST_CASE("after a host dies --max-restarts resumes on every host to the uninterrupted state",
          "[launch][checkpoint]") {
  SKIP_WITHOUT_NETNS_HOSTS();
  NetnsHosts hosts(2);
  TempDir dir;
  constexpr int kSteps = 60;
  auto train = [&](const std::string& name) {
    return with(tiny_train(4, (dir / (name + ".jsonl")).string(), kSteps),
                {"--ckpt-dir", (dir / name).string(), "--save-every", "10"});
  };
  auto whole = hosts.run_in(
      0, launch_args(hosts, with({"--", "conveyor", "train"}, train("whole"))), kTcpOnly);
  INFO(whole.output);
  REQUIRE(whole.exit_code == 0);

  const std::string launch = shell_command(
      launch_args(hosts, with({"--max-restarts", "1", "--", "conveyor", "train"}, train("cut"))));
  // Host 1's supervisor is killed once 15 steps are done, the first time only.
  const std::string script = fault_script(launch, (dir / "cut.jsonl").string(), 15,
                                          "kill -9 " + supervisor_pid_of(hosts, 1));
  auto r = hosts.run_in(0, {"sh", "-c", script}, kTcpOnly, 300);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("launch exit 0") != std::string::npos);
  CHECK(r.output.find("restart 1 of 1 on every host") != std::string::npos);
  CHECK(state_checksums(dir / "cut") == state_checksums(dir / "whole"));
  CHECK(loss_texts((dir / "cut.jsonl").string()) == loss_texts((dir / "whole.jsonl").string()));
  CHECK(hosts.leftover_processes().empty());
}

TEST_CASE("a host whose link goes down is named, launch exits 255 and nothing runs anywhere",
          "[launch][hardening]") {
  SKIP_WITHOUT_NETNS_HOSTS();
  NetnsHosts hosts(2);
  TempDir dir;
  const auto metrics = (dir / "m.jsonl").string();
  // Host 1's only link goes down mid-run: its ranks go silent for the others, host 0's
  // ranks fail with "a peer failed" (exit 3), and the session to host 1 hears nothing more.
  std::string rsh = "ssh -F " + hosts.ssh_config();
  bool expect_unreachable = false;
  SECTION("ssh's keepalives end the cut-off session (exit 255)") {
    rsh += " -o ServerAliveInterval=1";  // ssh_config's, made explicit
  }
  SECTION("without keepalives the session hangs until launch gives up on it") {
    rsh += " -o ServerAliveInterval=0";  // a user's ssh as it comes: it waits forever
    expect_unreachable = true;
  }
  const std::string launch =
      shell_command(with({CONVEYOR_BIN, "launch", "--hostfile", hosts.hostfile(), "--rsh", rsh,
                          "--grace", "1", "--", "conveyor", "train"},
                         tiny_train(4, metrics, 100000)));
  const std::string script = fault_script(
      launch, metrics, 3, fmt::format("ip netns exec {} ip link set eth0 down", hosts.netns(1)));
  auto r = hosts.run_in(0, {"sh", "-c", script}, kTcpOnly, 120);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  // ssh's code for a host it cannot reach, not 137 (launch's own SIGKILL of the session).
  CHECK(r.output.find("launch exit 255") != std::string::npos);
  CHECK(r.output.find("went silent") != std::string::npos);
  CHECK(r.output.find(" at " + hosts.address(1) + ", pid ") != std::string::npos);
  // The launcher names the cut-off host ("failed: ssh exited 255" or "is unreachable"), and
  // does not blame the healthy one.
  CHECK(r.output.find("conveyor launch: host " + hosts.address(1) + " (ranks 2-3) ") !=
        std::string::npos);
  if (expect_unreachable)
    CHECK(r.output.find("host " + hosts.address(1) + " (ranks 2-3) is unreachable") !=
          std::string::npos);
  CHECK(r.output.find("host " + hosts.address(0) + " (ranks 0-1) failed") == std::string::npos);
  // The cut-off host's supervisor learns of it when sshd drops the session; bounded wait.
  std::vector<std::string> left;
  for (int i = 0; i < 300; ++i) {
    left = hosts.leftover_processes();
    if (left.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (const auto& p : left) INFO(p);
  CHECK(left.empty());
}
