// `conveyor launch`: the ranks' environment, prefixed output, and failure handling: one
// failing rank stops the group (no rank outlives launch), a killed rank is named by the
// survivors, a frozen rank is named first and killed, and Ctrl-C reaches every rank.
#include <catch2/catch.hpp>

#include <signal.h>

#include <chrono>
#include <map>
#include <set>
#include <sstream>

#include "tests/integration/pipeline/pipeline_test_util.h"

using namespace conveyor::test;

TEST_CASE("launch prefixes every output line with its rank", "[launch]") {
  auto r = run_conveyor({"launch", "--nproc", "3", "--", "sh", "-c",
                         "echo hello $RANK; echo bye $RANK >&2; printf 'no newline %s' $RANK"},
                        {}, 60);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  std::map<int, std::vector<std::string>> by_rank;
  for (const auto& line : lines_of(r.output)) {
    int rank = -1;
    const auto text = strip_rank_prefix(line, &rank);
    INFO(line);
    REQUIRE(rank >= 0);  // nothing unprefixed
    by_rank[rank].push_back(text);
  }
  REQUIRE(by_rank.size() == 3);
  for (const auto& [rank, texts] : by_rank) {
    const auto n = std::to_string(rank);
    const std::multiset<std::string> got(texts.begin(), texts.end());
    // stdout and stderr share one pipe: both are there, and an unterminated last line too.
    CHECK(got == std::multiset<std::string>{"hello " + n, "bye " + n, "no newline " + n});
  }
}

TEST_CASE("launch sets the rendezvous environment of every rank", "[launch]") {
  auto env_of = [](int nproc) {
    auto r = run_conveyor({"launch", "--nproc", std::to_string(nproc), "--", "sh", "-c",
                           "echo env $RANK $WORLD_SIZE $LOCAL_RANK $MASTER_ADDR $MASTER_PORT "
                           "$CONVEYOR_JOB_TOKEN"},
                          {"RANK=99", "CONVEYOR_JOB_TOKEN=stale"}, 60);  // replaced, not kept
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    std::map<int, std::vector<std::string>> fields;  // rank -> fields after "env"
    for (const auto& line : lines_of(r.output)) {
      int rank = -1;
      std::istringstream in(strip_rank_prefix(line, &rank));
      std::string word;
      in >> word;
      if (word != "env") continue;
      while (in >> word) fields[rank].push_back(word);
    }
    return fields;
  };
  const auto job = env_of(3);
  REQUIRE(job.size() == 3);
  std::set<std::string> tokens, ports;
  for (const auto& [rank, f] : job) {
    INFO("rank " << rank);
    REQUIRE(f.size() == 6);
    CHECK(f[0] == std::to_string(rank));  // RANK
    CHECK(f[1] == "3");                   // WORLD_SIZE
    CHECK(f[2] == std::to_string(rank));  // LOCAL_RANK (one node)
    CHECK(f[3] == "127.0.0.1");           // MASTER_ADDR
    CHECK(std::stoi(f[4]) > 0);           // MASTER_PORT
    CHECK(f[5].size() >= 16);             // a random secret, not the inherited one
    ports.insert(f[4]);
    tokens.insert(f[5]);
  }
  CHECK(ports.size() == 1);
  CHECK(tokens.size() == 1);
  // Every job gets its own token.
  const auto other = env_of(1);
  REQUIRE(other.size() == 1);
  CHECK(other.at(0).at(5) != *tokens.begin());
}

TEST_CASE("one failing rank stops the others and launch returns its exit code", "[launch]") {
  TempDir dir;
  // Ranks 0 and 2 record their pid (exec: the pid is the sleeping process itself) and sleep
  // past the test's deadline; rank 1 fails once both are up.
  const std::string rank_cmd =
      "cd " + shell_quoted(dir.str()) +
      "; if [ \"$RANK\" = 1 ]; then until [ -s pid.0 ] && [ -s pid.2 ]; do sleep 0.05; done;"
      " exit 7; fi; echo $$ > pid.$RANK; exec sleep 120";
  auto r = run_conveyor({"launch", "--nproc", "3", "--", "sh", "-c", rank_cmd}, {}, 60);
  INFO(r.output);
  // launch ended by itself (the harness did not kill it) with rank 1's code...
  CHECK(r.output.find("[test harness: killed after timeout]") == std::string::npos);
  CHECK(r.exit_code == 7);
  CHECK(r.output.find("rank 1 failed (exit 7)") != std::string::npos);
  // ...and no rank outlives it.
  for (int rank : {0, 2}) {
    const pid_t pid = std::stoi(read_file(dir / ("pid." + std::to_string(rank))));
    INFO("rank " << rank << ", pid " << pid);
    const bool alive = kill(pid, 0) == 0;
    if (alive) kill(pid, SIGKILL);
    CHECK_FALSE(alive);
  }
}

TEST_CASE("a rank killed during training ends the job mid-training and is named", "[launch]") {
  TempDir dir;
  const auto metrics = (dir / "m.jsonl").string();
  // Rank 2 is killed with SIGKILL (no chance to say goodbye) once the first step is done;
  // --sleep-f-ms keeps the 100 steps long enough that the job is mid-training then.
  std::string train = shell_quoted(CONVEYOR_BIN) +
                      " train --stages 4 --layers 4 --dim 16 --heads 2 --seq 16 --microbatches 4"
                      " --micro-batch-size 1 --steps 100 --print-every 0 --sleep-f-ms 50"
                      " --metrics " +
                      shell_quoted(metrics);
  std::string script =
      "if [ \"$RANK\" = 2 ]; then"
      " ( until [ -s " +
      shell_quoted(metrics) + " ]; do sleep 0.05; done; kill -9 $$ ) & fi; exec " + train;
  auto r = run_conveyor({"launch", "--nproc", "4", "--", "sh", "-c", script}, {}, 120);
  INFO(r.output);
  // The job ended by itself (the harness did not kill it), with the dead rank's status,
  // mid-training.
  CHECK(r.output.find("[test harness: killed after timeout]") == std::string::npos);
  CHECK(r.exit_code == 128 + SIGKILL);
  CHECK(r.output.find("rank 2 failed (exit 137)") != std::string::npos);
  CHECK(lines_of(read_file(metrics)).size() < 100);
  // Every survivor says which rank died.
  for (int survivor : {0, 1, 3}) {
    bool named = false;
    for (const auto& line : lines_of(r.output)) {
      int rank = -1;
      const auto text = strip_rank_prefix(line, &rank);
      named |= rank == survivor && text.find("rank 2") != std::string::npos;
    }
    INFO("survivor rank " << survivor);
    CHECK(named);
  }
}

TEST_CASE("a rank frozen during training is named first by launch, killed, and the job ends",
          "[launch]") {
  TempDir dir;
  const auto metrics = (dir / "m.jsonl").string();
  // Rank 2 is stopped with SIGSTOP (alive but silent: no heartbeats, no progress) once the
  // first step is done. The activations (128 x 128 floats) are large enough for UCX's
  // rendezvous protocol, so its neighbours have sends to it in flight when they give up.
  std::string train = shell_quoted(CONVEYOR_BIN) +
                      " train --stages 4 --layers 4 --dim 128 --heads 2 --seq 128"
                      " --microbatches 4 --micro-batch-size 1 --steps 100 --print-every 0"
                      " --sleep-f-ms 50 --metrics " +
                      shell_quoted(metrics);
  std::string script = "if [ \"$RANK\" = 2 ]; then echo $$ > " + shell_quoted(dir.str()) +
                       "/pid.2; ( until [ -s " + shell_quoted(metrics) +
                       " ]; do sleep 0.05; done; kill -STOP $$ ) & fi; exec " + train;
  auto r = run_conveyor({"launch", "--nproc", "4", "--", "sh", "-c", script}, {}, 120);
  INFO(r.output);
  CHECK(r.output.find("[test harness: killed after timeout]") == std::string::npos);
  // launch's own first line names the rank that went silent, not a survivor that exited 3.
  std::string first_launch_line;
  for (const auto& line : lines_of(r.output)) {
    if (line.rfind("conveyor launch: ", 0) == 0) {
      first_launch_line = line;
      break;
    }
  }
  CHECK(first_launch_line.rfind("conveyor launch: rank 2 (host ", 0) == 0);
  CHECK(first_launch_line.find("went silent") != std::string::npos);
  CHECK(r.exit_code == 128 + SIGKILL);  // launch killed the frozen rank
  CHECK(lines_of(read_file(metrics)).size() < 100);
  // Every survivor says which rank went silent, and where; no survivor leaves UCX
  // complaining (request pool warnings, failed assertions) on its way out.
  for (int survivor : {0, 1, 3}) {
    bool named = false;
    for (const auto& line : lines_of(r.output)) {
      int rank = -1;
      const auto text = strip_rank_prefix(line, &rank);
      named |= rank == survivor && text.find("rank 2 (host ") != std::string::npos &&
               text.find("went silent") != std::string::npos;
    }
    INFO("survivor rank " << survivor);
    CHECK(named);
  }
  CHECK(r.output.find("was not returned to mpool") == std::string::npos);
  CHECK(r.output.find("Assertion") == std::string::npos);
  CHECK(r.output.find("backtrace") == std::string::npos);
  // The frozen rank does not outlive launch.
  const pid_t pid = std::stoi(read_file(dir / "pid.2"));
  const bool alive = kill(pid, 0) == 0;
  if (alive) kill(pid, SIGKILL);
  CHECK_FALSE(alive);
}

TEST_CASE("Ctrl-C on launch stops every rank", "[launch]") {
  TempDir dir;
  // Each rank records its pid (exec: the pid is the sleeping process itself) and sleeps.
  const std::string rank_cmd = "echo $$ > " + shell_quoted(dir.str()) + "/pid.$RANK; exec sleep 60";
  // The test's shell starts launch, waits until both ranks are up, sends SIGINT to launch
  // only (as a terminal would to the foreground process), and reports launch's exit code.
  const std::string script =
      shell_quoted(CONVEYOR_BIN) + " launch --nproc 2 -- sh -c " + shell_quoted(rank_cmd) +
      " & launch=$!\n"
      "cd " +
      shell_quoted(dir.str()) +
      "\n"
      "until [ -s pid.0 ] && [ -s pid.1 ]; do sleep 0.05; done\n"
      "kill -INT $launch\n"
      "wait $launch; echo \"launch exit $?\"\n"
      "for f in pid.0 pid.1; do if kill -0 $(cat $f) 2>/dev/null; then echo \"alive $f\"; "
      "kill -9 $(cat $f); fi; done\n";
  auto r = run_program({"sh", "-c", script}, {}, 60);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("launch exit 130") != std::string::npos);  // 128 + SIGINT
  CHECK(r.output.find("alive") == std::string::npos);
}

TEST_CASE("launch returns 0 after a stop request when every rank finished with 0", "[launch]") {
  TempDir dir;
  // Each rank finishes on SIGTERM (as a rank does when the request lands in its last step:
  // it completes, commits and exits 0), after saying it is ready for the signal.
  const std::string rank_cmd = "trap 'echo finished $RANK; exit 0' TERM; echo > " +
                               shell_quoted(dir.str()) +
                               "/ready.$RANK; while :; do sleep 0.05; done";
  // The longest --stop-timeout also checks that it did not turn into an immediate SIGKILL.
  const std::string script = shell_quoted(CONVEYOR_BIN) +
                             " launch --nproc 2 --stop-timeout 604800 -- sh -c " +
                             shell_quoted(rank_cmd) +
                             " & launch=$!\n"
                             "cd " +
                             shell_quoted(dir.str()) +
                             "\n"
                             "until [ -e ready.0 ] && [ -e ready.1 ]; do sleep 0.05; done\n"
                             "kill -TERM $launch\n"
                             "wait $launch; echo \"launch exit $?\"\n";
  auto r = run_program({"sh", "-c", script}, {}, 60);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("[rank 0] finished 0"));
  CHECK_THAT(r.output, Catch::Contains("[rank 1] finished 1"));
  CHECK_THAT(r.output, Catch::Contains("launch exit 0\n"));  // not 143
}

TEST_CASE("launch refuses node flags that cannot form one job", "[launch]") {
  auto refused = [](const std::vector<std::string>& flags, const std::string& mention) {
    auto args = with({"launch", "--nproc", "1"}, flags);
    args.insert(args.end(), {"--", "true"});
    auto r = run_conveyor(args, {}, 60);
    INFO(r.output);
    CHECK(r.exit_code == 2);
    CHECK(r.output.find(mention) != std::string::npos);
  };
  refused({"--nnodes", "2", "--node-rank", "2", "--master-port", "29999"},
          "--node-rank 2 is outside 0..1");
  refused({"--nnodes", "2", "--node-rank", "-1", "--master-port", "29999"},
          "--node-rank -1 is outside");
  refused({"--nnodes", "0"}, "--nnodes must be at least 1");
  refused({"--nnodes", "2", "--node-rank", "1"}, "--master-port 0 picks a free port on each node");
  refused({"--master-port", "70000"}, "--master-port 70000 is not a TCP port");
}
