// `conveyor launch --hostfile` over real ssh into network-namespace hosts (hosts_fixture.h):
// the launcher runs on host 0, as on a login node that is also the first worker, and UCX
// carries activations between hosts over TCP.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <iterator>
#include <thread>

#include "tests/integration/launch/hosts_fixture.h"

using namespace conveyor::test;

namespace {

std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

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
  std::string launch;
  for (const auto& a :
       launch_args(hosts, with({"--", "conveyor", "train"}, tiny_train(4, metrics, 100000))))
    fmt::format_to(std::back_inserter(launch), " {}", quoted(a));
  // On host 0: start the job, wait until it trains, kill -9 host 1's supervisor (its ranks
  // die with it), and report how the launcher ended.
  const std::string script = fmt::format(
      "{} & launch=$!\n"
      "until [ -s {} ] && [ $(wc -l < {}) -ge 3 ]; do sleep 0.05; done\n"
      "victim=$(ip netns pids {} | while read p; do\n"
      "  if tr '\\0' ' ' < /proc/$p/cmdline | grep -q -- 'launch --nproc'; then echo $p; fi; "
      "done | head -1)\n"
      "kill -9 $victim\n"
      "wait $launch; echo \"launch exit $?\"\n",
      launch, quoted(metrics), quoted(metrics), hosts.netns(1));
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
  std::string launch;
  const std::string rank_cmd =
      fmt::format("echo $$ > {}/pid.$RANK; exec sleep 120", quoted(dir.str()));
  for (const auto& a : launch_args(hosts, {"--", "sh", "-c", rank_cmd}))
    fmt::format_to(std::back_inserter(launch), " {}", quoted(a));
  const std::string script = fmt::format(
      "cd {}\n{} & launch=$!\n"
      "until [ -s pid.0 ] && [ -s pid.1 ] && [ -s pid.2 ] && [ -s pid.3 ]; do sleep 0.05; done\n"
      "kill -9 $launch; wait $launch; echo \"launch exit $?\"\n",
      quoted(dir.str()), launch);
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
