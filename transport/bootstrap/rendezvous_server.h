// The rendezvous service: runs inside rank 0, on a background thread.
//
// It accepts TCP connections at MASTER_PORT, admits each only after a hello carrying
// the job token, checks that every rank reports the same world size and configuration
// fingerprint, hands every rank the UCX worker addresses of all ranks once all have
// joined, serves the collectives (gather, combine in rank order, send the same bytes to
// all), and watches every rank: a closed connection, an abort or missing heartbeats
// make it tell every other rank "rank N failed" (kFailure), within a heartbeat timeout,
// naming its host and pid and whether it died, went silent or aborted. A rank about to give
// up waiting for the others may ask who has joined (kRosterQuery).
//
// A connection that sends garbage, an oversized length, a wrong token or nothing at all
// is closed and logged (escaped, and rate-limited: anyone who can reach the port can cause
// these lines); the job carries on. A connection with the right token but a
// mismatching configuration (world size, fingerprint, duplicate rank) fails the job: it
// is one of ours, started wrongly.
//
// Thread safety: the public methods may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/clock.h"
#include "common/error.h"
#include "transport/bootstrap/job_failure.h"

namespace conveyor::transport {

// Lines about refused connections (wrong token, garbage, silence) are capped at this many
// per window; the next line after a gap says how many were left out.
inline constexpr int kRefusedLogBurst = 10;
inline constexpr int kRefusedLogWindowSeconds = 10;

// Connections that have not presented the token yet ("pre-auth"): anyone who can reach the
// port can open them, so they are bounded. At most kMaxPreAuthConnections wait for their
// hello at once; a new one beyond that closes the one that has waited longest (a rank sends
// its hello the moment it connects, so a flood pushes out only its own connections). Each
// pass of the service accepts at most half of that many, after reading every connection it
// already has, so a rank's hello is read before anything can push its connection out. A
// connection that has not said hello within kHelloDeadlineSeconds is closed.
inline constexpr size_t kMaxPreAuthConnections = 128;
inline constexpr double kHelloDeadlineSeconds = 3;

struct ServiceConfig {
  int world_size = 1;
  std::string job_token;
  std::string fingerprint;
  double heartbeat_timeout_s = 1.5;
  double hello_timeout_s = kHelloDeadlineSeconds;  // a connection without a hello is dropped then
  std::string listen_host = "127.0.0.1";           // MASTER_ADDR as rank 0 has it (listen_tcp)
};

class RendezvousServer {
 public:
  // Binds and listens now (throws Error(kUsage) if the port is in use), then serves on a
  // background thread until destroyed.
  RendezvousServer(int port, ServiceConfig config);
  ~RendezvousServer();
  RendezvousServer(const RendezvousServer&) = delete;
  RendezvousServer& operator=(const RendezvousServer&) = delete;

  // Declares the job failed because of `rank` and tells every other rank, synchronously
  // (rank 0's own abort uses this so the news leaves before the process exits).
  void fail_job(int rank, ErrorKind kind, FailureCause cause, const std::string& reason);

  // Blocks until every rank has said goodbye (or the job failed), or the deadline.
  // Returns true if all said goodbye.
  bool wait_all_departed(Deadline deadline);

 private:
  struct State;
  void serve();
  std::unique_ptr<State> state_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace conveyor::transport
