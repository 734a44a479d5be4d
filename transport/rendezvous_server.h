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
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/clock.h"
#include "common/error.h"
#include "transport/job_failure.h"

namespace conveyor::transport {

// Lines about refused connections (wrong token, garbage, silence) are capped at this many
// per window; the next line after a gap says how many were left out.
inline constexpr int kRefusedLogBurst = 10;
inline constexpr int kRefusedLogWindowSeconds = 10;

struct ServiceConfig {
  int world_size = 1;
  std::string job_token;
  std::string fingerprint;
  double heartbeat_timeout_s = 1.5;
  double hello_timeout_s = 10;            // an admitted-but-silent connection is dropped after this
  std::string listen_host = "127.0.0.1";  // MASTER_ADDR as rank 0 has it (listen_tcp)
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
