// Liveness on a saturated link: other traffic fills the queue of the one link between two
// ranks, so heartbeats arrive late by the link's queueing delay, well past a short heartbeat
// timeout. No live rank may be declared failed for that (transport/bootstrap/socket.h,
// silence_limit_s). The hosts are network namespaces joined by a veth pair shaped with tbf
// (busy_link.sh); the test needs root, `ip`, `tc`, `unshare` and python3, and reports itself
// skipped without them.
#include <catch2/catch.hpp>

#include <unistd.h>

#include "tests/test_util.h"

using namespace conveyor::test;

namespace {

std::string unavailable() {
  if (geteuid() != 0) return "the busy link needs root (network namespaces, tc)";
  for (const char* tool : {"ip", "tc", "unshare", "python3"}) {
    if (run_program({"sh", "-c", std::string("command -v ") + tool}, {}, 10).exit_code != 0)
      return std::string("no ") + tool + " in PATH";
  }
  if (auto r = run_program({"unshare", "--net", "true"}, {}, 10); r.exit_code != 0)
    return "cannot create network namespaces: " + r.output;
  return "";
}

}  // namespace

TEST_CASE("a link saturated by other traffic delays heartbeats but fails no live rank",
          "[transport]") {
  if (const auto why = unavailable(); !why.empty()) {
    WARN("SKIPPED: " << why);
    return;
  }
  // 4 Mbit/s with a queue of up to a second, four TCP streams each way keeping it full: the
  // heartbeats (every 62 ms at this timeout) wait in the queue for hundreds of milliseconds,
  // longer than the 0.25 s timeout. Before the link's queueing counted, this failed at once,
  // usually while the ranks were still connecting ("went silent: no heartbeat ... for 0.2 s").
  const std::string script =
      std::string(CONVEYOR_SOURCE_DIR) + "/tests/integration/transport/busy_link.sh";
  const auto r = run_program({script,  CONVEYOR_BIN,
                              "4mbit", "1s",
                              "4",     "--",
                              "train", "--stages",
                              "2",     "--layers",
                              "2",     "--dim",
                              "32",    "--heads",
                              "2",     "--seq",
                              "16",    "--microbatches",
                              "2",     "--micro-batch-size",
                              "1",     "--steps",
                              "1",     "--print-every",
                              "1"},
                             {"CONVEYOR_HEARTBEAT_TIMEOUT=0.25"}, 240);
  INFO(r.output);
  REQUIRE(r.output.find("busy_link: the link's queue filled: yes") != std::string::npos);
  CHECK(r.output.find("went silent") == std::string::npos);
  CHECK(r.output.find("died") == std::string::npos);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("[rank 1] step 1/1 | loss") != std::string::npos);
}
