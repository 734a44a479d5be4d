// `conveyor launch --hosts/--hostfile` on one machine: an rsh stand-in (local_rsh.sh) runs
// each "host"'s supervisor here, so the multi-host launcher's own logic is tested wherever
// the suite runs (tests/integration/launch/ runs it over real ssh into network namespaces).
// Also: ranks started the way torchrun starts them, without a launcher of ours.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>

#include "common/net.h"
#include "tests/integration/pipeline/pipeline_test_util.h"

using namespace conveyor::test;

namespace {

const std::string kRsh =
    std::string(CONVEYOR_SOURCE_DIR) + "/tests/integration/pipeline/local_rsh.sh";

std::vector<std::string> on_hosts(const std::string& hosts, const std::vector<std::string>& rest) {
  return with({"launch", "--hosts", hosts, "--rsh", kRsh, "--master-addr", "127.0.0.1",
               "--master-port", std::to_string(conveyor::free_tcp_port())},
              rest);
}

}  // namespace

TEST_CASE("two hosts of two ranks train with the one-stage losses bit for bit", "[launch]") {
  TempDir dir;
  auto train = tiny_model_args({.layers = 4, .microbatches = 4, .micro_batch_size = 2});
  train = with(train, {"--steps", "3"});
  auto one = run_conveyor(
      with(with({"train"}, train), {"--stages", "1", "--metrics", (dir / "one.jsonl").string()}));
  REQUIRE(one.exit_code == 0);
  auto four = run_conveyor(
      on_hosts("a:2,b:2", with(with({"--", "conveyor", "train"}, train),
                               {"--stages", "4", "--metrics", (dir / "four.jsonl").string()})));
  INFO(four.output);
  REQUIRE(four.exit_code == 0);
  CHECK(loss_texts((dir / "four.jsonl").string()) == loss_texts((dir / "one.jsonl").string()));
  CHECK(four.output.find("4 ranks on 2 hosts") != std::string::npos);
}

TEST_CASE("every host's ranks get their place and one secret that never appears in argv",
          "[launch]") {
  TempDir dir;
  const std::string log = (dir / "rsh.log").string();
  const std::string rank_cmd =
      "echo \"$RANK $WORLD_SIZE $LOCAL_RANK $MASTER_ADDR $CONVEYOR_JOB_TOKEN\" > " +
      shell_quoted(dir.str()) + "/env.$RANK";
  // Hosts of 1, 2 and 1 slots: ranks are numbered host by host.
  auto r = run_conveyor(on_hosts("a,b:2,c", {"--", "sh", "-c", rank_cmd}), {"RSH_LOG=" + log});
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  std::set<std::string> tokens;
  const std::map<int, std::string> local_rank = {{0, "0"}, {1, "0"}, {2, "1"}, {3, "0"}};
  for (int rank = 0; rank < 4; ++rank) {
    std::istringstream in(read_file(dir / ("env." + std::to_string(rank))));
    std::string r_rank, world, local, addr, token;
    in >> r_rank >> world >> local >> addr >> token;
    CHECK(r_rank == std::to_string(rank));
    CHECK(world == "4");
    CHECK(local == local_rank.at(rank));
    CHECK(addr == "127.0.0.1");
    tokens.insert(token);
  }
  REQUIRE(tokens.size() == 1);
  const std::string token = *tokens.begin();
  CHECK(token.size() == 32);
  const std::string argv_log = read_file(log);
  CHECK(std::count(argv_log.begin(), argv_log.end(), '\n') == 3);  // one session per host
  CHECK(argv_log.find(token) == std::string::npos);
}

TEST_CASE("a failing host ends the job and is named with its ranks", "[launch]") {
  // Rank 2 (host b's first) fails; the others would sleep for a minute.
  auto r = run_conveyor(
      on_hosts("a:2,b:2", {"--", "sh", "-c", "if [ $RANK = 2 ]; then exit 7; fi; exec sleep 60"}),
      {}, 60);
  INFO(r.output);
  CHECK(r.exit_code == 7);
  CHECK(r.output.find("host b (ranks 2-3) failed (exit 7)") != std::string::npos);
  CHECK(r.output.find("[host b] conveyor launch: rank 2 failed (exit 7)") != std::string::npos);
}

TEST_CASE("a host that cannot be reached is named", "[launch]") {
  // Host b's ssh fails to connect; host a's rank would wait for the others for a minute.
  auto r = run_conveyor(on_hosts("a:1,b:1", {"--", "sh", "-c", "exec sleep 60"}),
                        {"UNREACHABLE_HOST=b"}, 60);
  INFO(r.output);
  CHECK(r.exit_code == 255);
  CHECK(r.output.find("[host b] ssh: connect to host b port 22: Connection refused") !=
        std::string::npos);
  CHECK(r.output.find("host b (rank 1) failed: ") != std::string::npos);
}

TEST_CASE("no rank outlives a launcher killed with SIGKILL, and Ctrl-C reaches every host",
          "[launch]") {
  TempDir dir;
  const std::string rank_cmd =
      fmt::format("echo $$ > {}/pid.$RANK; exec sleep 60", shell_quoted(dir.str()));
  for (const char* how : {"KILL", "INT"}) {
    INFO(how);
    const std::string launch =
        shell_command(with({CONVEYOR_BIN}, on_hosts("a:2,b:2", {"--", "sh", "-c", rank_cmd})));
    // fmt, not operator+ chains (GCC 12 warns falsely about those at -O3).
    const std::string script = fmt::format(
        "cd {}\nrm -f pid.*\n{} & launch=$!\n"
        "until [ -s pid.0 ] && [ -s pid.1 ] && [ -s pid.2 ] && [ -s pid.3 ]; do sleep 0.05; done\n"
        "kill -{} $launch\n"
        "wait $launch; echo \"launch exit $?\"\n"
        // A rank killed with its supervisor is gone at once; allow 10 s for the signal path.
        "for f in pid.0 pid.1 pid.2 pid.3; do n=0; while kill -0 $(cat $f) 2>/dev/null; do\n"
        "  n=$((n+1)); if [ $n -gt 200 ]; then echo \"alive $f\"; kill -9 $(cat $f); break; fi;\n"
        "  sleep 0.05; done; done\n",
        shell_quoted(dir.str()), launch, how);
    auto r = run_program({"sh", "-c", script}, {}, 60);
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    CHECK(r.output.find(std::string("launch exit ") + (how[0] == 'K' ? "137" : "130")) !=
          std::string::npos);
    CHECK(r.output.find("alive") == std::string::npos);
  }
}

TEST_CASE("multi-host flags that cannot work are refused", "[launch]") {
  auto refused = [](const std::vector<std::string>& args, const std::string& mention) {
    auto r = run_conveyor(args, {}, 60);
    INFO(r.output);
    CHECK(r.exit_code == 2);
    CHECK(r.output.find(mention) != std::string::npos);
  };
  refused({"launch", "--hosts", "a:2", "--nproc", "2", "--", "true"},
          "--nproc does not go with --hostfile/--hosts");
  refused({"launch", "--hosts", "a:2,a:1", "--", "true"}, "host a is listed twice");
  refused({"launch", "--hosts", "a:0", "--", "true"}, "slots '0' is not a whole number");
  refused({"launch", "--hosts", "-oProxyCommand=x", "--", "true"}, "is not a host name");
  refused({"launch", "--hostfile", "/nonexistent", "--", "true"}, "cannot read --hostfile");
  refused({"launch", "--", "true"}, "needs --nproc N");
  // A FIFO is refused at once, never blocked on.
  TempDir dir;
  REQUIRE(mkfifo((dir / "hosts").c_str(), 0644) == 0);
  refused({"launch", "--hostfile", (dir / "hosts").string(), "--", "true"}, "a FIFO");
}

TEST_CASE("a checkpoint directory that is not shared by every host is refused at start-up",
          "[launch][checkpoint]") {
  if (geteuid() != 0 || run_program({"unshare", "--mount", "true"}).exit_code != 0) {
    WARN("SKIPPED: needs root and mount namespaces (unshare --mount)");
    return;
  }
  TempDir dir;
  const std::string ckpt = (dir / "ckpt").string();
  std::filesystem::create_directories(ckpt);
  const std::string rsh =
      std::string(CONVEYOR_SOURCE_DIR) + "/tests/integration/pipeline/private_dir_rsh.sh";
  auto train = tiny_model_args({.layers = 4, .microbatches = 4, .micro_batch_size = 2});
  auto r = run_conveyor(
      with({"launch", "--hosts", "a:2,b:2", "--rsh", rsh, "--master-addr", "127.0.0.1",
            "--master-port", std::to_string(conveyor::free_tcp_port()), "--", "conveyor", "train"},
           with(train, {"--steps", "3", "--stages", "4", "--ckpt-dir", ckpt})),
      {"PRIVATE_DIR=" + ckpt}, 120);
  INFO(r.output);
  CHECK(r.exit_code == 2);
  CHECK(r.output.find("is not the same directory on every host: rank 2 (host ") !=
        std::string::npos);
  CHECK(r.output.find("rank 3 (host ") != std::string::npos);
  CHECK(r.output.find("stage 0: at most") == std::string::npos);  // nothing trained
  CHECK(!std::filesystem::exists(std::filesystem::path(ckpt) / ".shared-check"));
}

TEST_CASE("SIGTERM to a multi-host launcher saves on every host and the rerun resumes",
          "[launch][checkpoint]") {
  TempDir dir;
  auto train = [&](const std::string& name) {
    return with(
        with(tiny_model_args({.layers = 4, .microbatches = 4, .micro_batch_size = 2}),
             {"--steps", "150", "--stages", "4"}),
        {"--ckpt-dir", (dir / name).string(), "--metrics", (dir / (name + ".jsonl")).string()});
  };
  const auto port = std::to_string(conveyor::free_tcp_port());
  auto hosts_launch = [&](const std::string& name) {
    return with({"launch", "--hosts", "a:2,b:2", "--rsh", kRsh, "--master-addr", "127.0.0.1",
                 "--master-port", port, "--", "conveyor", "train"},
                train(name));
  };
  REQUIRE(run_conveyor(hosts_launch("whole")).exit_code == 0);

  const std::string metrics = shell_quoted((dir / "cut.jsonl").string());
  const std::string script = fmt::format(
      "{} & launch=$!\n"
      "until [ -s {m} ] && [ $(wc -l < {m}) -ge 20 ]; do sleep 0.01; done\n"
      "kill -TERM $launch; wait $launch; echo \"launch exit $?\"\n",
      shell_command(with({CONVEYOR_BIN}, hosts_launch("cut"))), fmt::arg("m", metrics));
  auto first = run_program({"sh", "-c", script}, {}, 120);
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  CHECK(first.output.find("launch exit 4") != std::string::npos);
  CHECK(first.output.find("every rank on every host saves and stops") != std::string::npos);

  auto rerun = run_conveyor(hosts_launch("cut"));
  INFO(rerun.output);
  REQUIRE(rerun.exit_code == 0);
  CHECK(state_checksums(dir / "cut") == state_checksums(dir / "whole"));
  CHECK(loss_texts((dir / "cut.jsonl").string()) == loss_texts((dir / "whole.jsonl").string()));
}

TEST_CASE("ranks started the torchrun way meet on MASTER_PORT + 1 while the agent holds it",
          "[launch]") {
  // torchrun's agent keeps its TCPStore on MASTER_PORT; this test holds the port the same way.
  const int port = conveyor::free_tcp_port();
  const int agent = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(agent, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(agent, 4) == 0);

  TempDir dir;
  const auto metrics = (dir / "two.jsonl").string();
  const auto train =
      with(with({CONVEYOR_BIN, "train"},
                tiny_model_args({.layers = 4, .microbatches = 4, .micro_batch_size = 2})),
           {"--steps", "3", "--stages", "2", "--metrics", metrics});
  // What torchrun exports to each worker (no launcher of ours in between).
  const std::string env = fmt::format(
      "WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT={} TORCHELASTIC_RUN_ID=test "
      "CONVEYOR_JOB_TOKEN=torchrun-test",
      port);
  const std::string script = fmt::format(
      "env RANK=0 LOCAL_RANK=0 {env} {cmd} > {dir}/r0.log 2>&1 & a=$!\n"
      "env RANK=1 LOCAL_RANK=1 {env} {cmd} > {dir}/r1.log 2>&1 & b=$!\n"
      "wait $a; ra=$?; wait $b; rb=$?; cat {dir}/r0.log {dir}/r1.log; echo \"exits $ra $rb\"\n",
      fmt::arg("env", env), fmt::arg("cmd", shell_command(train)),
      fmt::arg("dir", shell_quoted(dir.str())));
  auto r = run_program({"sh", "-c", script}, {}, 120);
  ::close(agent);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("exits 0 0") != std::string::npos);
  const auto one_path = (dir / "one.jsonl").string();
  REQUIRE(run_conveyor(
              with(with({"train"},
                        tiny_model_args({.layers = 4, .microbatches = 4, .micro_batch_size = 2})),
                   {"--steps", "3", "--stages", "1", "--metrics", one_path}))
              .exit_code == 0);
  CHECK(loss_texts(metrics) == loss_texts(one_path));
}

TEST_CASE("a multi-host launch returns 0 after a stop request when every rank finished with 0",
          "[launch]") {
  TempDir dir;
  // Each rank finishes on SIGTERM, as a rank does when the request lands in its last step.
  const std::string rank_cmd = "trap 'echo finished $RANK; exit 0' TERM; echo > " +
                               shell_quoted(dir.str()) +
                               "/ready.$RANK; while :; do sleep 0.05; done";
  const std::string script =
      shell_command(with({CONVEYOR_BIN}, on_hosts("a,b", {"--", "sh", "-c", rank_cmd}))) +
      " & launch=$!\ncd " + shell_quoted(dir.str()) +
      "\nuntil [ -e ready.0 ] && [ -e ready.1 ]; do sleep 0.05; done\n"
      "kill -TERM $launch\nwait $launch; echo \"launch exit $?\"\n";
  auto r = run_program({"sh", "-c", script}, {}, 60);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("finished 0"));
  CHECK_THAT(r.output, Catch::Contains("finished 1"));
  CHECK_THAT(r.output, Catch::Contains("launch exit 0\n"));  // not 143
}
