// A rank's connection to the rendezvous service (rendezvous_server.h).
//
// The constructor connects (retrying until the deadline: rank 0 may start last),
// presents the hello (token, rank, fingerprint, UCX address) and blocks until the
// service has heard from every rank and sent all addresses. A monitor thread then
// keeps reading the connection: heartbeats both ways, collective results, and failure
// news. Failure is sticky: once failed() turns true it stays true. The first failure is
// also reported to the local supervisor (job_failure.h) when Options::failure_report_fd is
// set. A constructor that gives up waiting for the others names the ranks that did not join
// and those that did.
//
// Thread safety: all methods may be called from any thread; collective() calls are
// serialized internally and must be issued in the same order on every rank.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "transport/bootstrap/job_failure.h"
#include "transport/bootstrap/options.h"
#include "transport/bootstrap/socket.h"
#include "transport/bootstrap/wire.h"

namespace conveyor::transport {

class BootstrapClient {
 public:
  BootstrapClient(const Options& options, std::vector<uint8_t> ucx_address, Deadline deadline);
  // Stops the monitor thread and closes the connection. Without a prior bye() the
  // service reports this rank as dead to the others.
  ~BootstrapClient();
  BootstrapClient(const BootstrapClient&) = delete;
  BootstrapClient& operator=(const BootstrapClient&) = delete;

  // Every rank's UCX worker address, indexed by rank (valid after construction).
  const std::vector<std::vector<uint8_t>>& addresses() const { return addresses_; }

  // Cheap (one atomic load): has the job failed? Then failure() says why.
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  JobFailure failure() const;
  // Throws the failure as conveyor::Error (kPeerFailed naming the rank, or its kind).
  [[noreturn]] void throw_failure() const;

  // Sends this rank's contribution to collective op and blocks until the combined result
  // arrives, the job fails (throws) or the deadline (throws kRuntime).
  std::vector<uint8_t> collective(wire::CollectiveOp op, int root, std::vector<uint8_t> payload,
                                  Deadline deadline);

  // Tells the service this rank is failing. Never throws.
  void abort(const std::string& reason) noexcept;
  // Tells the service this rank is leaving cleanly; later connection loss is not a failure.
  // Waits (up to kByeAckSeconds) until the service confirms it read the goodbye.
  void bye() noexcept;

 private:
  struct Joined {
    int rank;
    std::string host;
    int pid;
  };
  void monitor();
  void set_failure(JobFailure f);
  // Asks the service who has joined and describes who is missing (best effort, bounded).
  std::string describe_missing_ranks();
  bool send_frame(wire::MsgType type, const std::vector<uint8_t>& payload);

  Options options_;
  Fd fd_;
  std::vector<std::vector<uint8_t>> addresses_;

  std::mutex write_mu_;  // one writer at a time on the socket
  std::mutex coll_mu_;   // one collective at a time
  uint64_t next_seq_ = 0;

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  bool welcomed_ = false;
  std::optional<std::vector<std::vector<uint8_t>>> welcome_;
  std::map<uint64_t, std::vector<uint8_t>> results_;
  std::optional<std::vector<Joined>> roster_;
  JobFailure failure_;
  std::atomic<bool> failed_{false};
  std::atomic<bool> leaving_{false};
  bool bye_acked_ = false;  // guarded by mu_
  // How long bye() waits for the service to confirm it read the goodbye.
  static constexpr double kByeAckSeconds = 5;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace conveyor::transport
