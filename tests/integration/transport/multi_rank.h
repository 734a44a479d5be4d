// Runs a small job of `world` ranks as forked processes, each with its own Transport.
//
// The parent (the test) never touches UCX, so forking is safe. Each child sets UCX_TLS,
// runs `body(rank, options)` and reports back through a pipe: exit code 0 and the
// string the body returned, or conveyor::Error's exit code (1/2/3) and its message.
// A child that stops itself (SIGSTOP) stays stopped until every other child has ended;
// then it is killed (exit_code 128 + SIGKILL, `stopped` set).
#pragma once

#include <csignal>
#include <functional>
#include <string>
#include <vector>

#include "transport/transport.h"

namespace conveyor::test {

struct RankOutcome {
  int exit_code = -1;    // 0 ok, 1/2/3 conveyor::Error, 4 other exception, 128+sig killed
  std::string text;      // the body's return value, or the error message
  bool stopped = false;  // it was stopped (SIGSTOP) when the others had ended
  std::string output;    // what it printed (stdout and stderr), with JobSpec::capture_output
};

struct JobSpec {
  int world = 2;
  std::string ucx_tls = "tcp";
  double timeout_s = 60;  // the whole job; children still running then are killed
  std::string token = "test-token";
  std::string fingerprint = "fp-1";
  // Called in the parent after the children start (e.g. to poke the service); the
  // children can wait for it with wait_for_go().
  std::function<void(int port)> parent_action;
  // Collect each child's stdout and stderr (UCX's and the logger's lines) in
  // RankOutcome::output instead of passing them through.
  bool capture_output = false;
};

using RankBody = std::function<std::string(int rank, transport::Options options)>;

std::vector<RankOutcome> run_job(const JobSpec& spec, const RankBody& body);

// In a child: blocks until the parent's action has finished (only with parent_action).
void wait_for_go();

// Fills `n` bytes with a pattern keyed by `seed`, and checks it (returns the first bad
// offset, or -1).
void fill_pattern(void* p, size_t n, uint64_t seed);
long check_pattern(const void* p, size_t n, uint64_t seed);

}  // namespace conveyor::test
