// Why a job failed, as every rank learns it from the rendezvous service, and the report a
// rank hands its local supervisor (`conveyor launch`) when it learns it.
//
// The report: `conveyor launch` gives every rank one end of a datagram socket and names its
// descriptor in CONVEYOR_FAILURE_REPORT_FD (Options::failure_report_fd). The first time a
// rank learns that the job failed because of rank N, it sends one datagram saying so, before
// anything else happens, so the supervisor knows which rank the job blamed before the
// survivors' exit codes (3, "a peer failed") arrive. A silent rank cannot report itself; its
// peers do. Sending never blocks and never raises SIGPIPE; a missing reader is ignored.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"

namespace conveyor::transport {

enum class FailureCause : uint32_t {
  kOther = 0,    // misconfiguration, a disagreement between ranks, ...
  kDied = 1,     // its connection closed: the process exited, crashed or was killed
  kSilent = 2,   // no heartbeat within the timeout: hung, stopped, or its host unreachable
  kAborted = 3,  // it called abort(): it failed and says why in its own log
};

struct JobFailure {
  int rank = -1;  // the rank that failed, -1 when no single rank is to blame
  ErrorKind kind = ErrorKind::kPeerFailed;
  FailureCause cause = FailureCause::kOther;
  std::string host;  // where that rank runs, when known
  int pid = 0;       // its process id on `host`, when known (0 otherwise)
  std::string reason;
};

// The report datagram (a magic, then the fields; transport/bootstrap/wire.h's byte codec).
std::vector<uint8_t> encode_failure_report(const JobFailure& f);
// nullopt for anything that is not a well-formed report.
std::optional<JobFailure> decode_failure_report(std::span<const uint8_t> bytes);

// Sends the report on `fd` (no-op for fd < 0). Never blocks, never throws.
void send_failure_report(int fd, const JobFailure& f) noexcept;

}  // namespace conveyor::transport
