// Small POSIX TCP helpers for the bootstrap. All sockets are non-blocking; every blocking
// helper takes a Deadline. Errors become conveyor::Error naming the address.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/clock.h"

namespace conveyor::transport {

// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset();
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// Listens at `port` (non-blocking) on the address rank 0 was given as MASTER_ADDR `host`:
// an IPv4 literal as it is (127.0.0.1 for a one-host job: nothing from outside reaches the
// service), "localhost" on loopback, a name on the address it resolves to, except a name
// that resolves to loopback here (Debian's /etc/hosts maps the own name to 127.0.1.1),
// which listens on every interface because other hosts resolve it to a real address.
// Throws Error(kUsage) when the port is in use or `host` is not this host's, naming it.
Fd listen_tcp(const std::string& host, int port);

// Whether MASTER_ADDR `host` names this host's loopback interface as it is written: an IPv4
// literal in 127.0.0.0/8, "::1" or "localhost". Then every rank that can reach rank 0 runs on
// this host. A name that only resolves to loopback here (Debian's own host name) is not: other
// hosts resolve it to a real address.
bool is_loopback_host(const std::string& host);

// Connects to host:port, retrying refused or unreachable attempts until `deadline`
// (the service may not be up yet). Throws Error(kRuntime) at the deadline.
Fd connect_tcp(const std::string& host, int port, Deadline deadline);

// Writes all bytes, waiting for the socket to drain up to `deadline`. Returns false if
// the peer closed the connection or the deadline passed (never throws, never SIGPIPE).
bool send_all(int fd, const uint8_t* data, size_t n, Deadline deadline);

// Reads what is available without blocking. Returns bytes read, 0 on orderly close,
// -1 if nothing is available now, -2 on error.
long read_some(int fd, uint8_t* buf, size_t n);

// How long a rank may be silent on connection `fd` before it is declared silent:
// heartbeat_timeout_s plus how long the link currently holds bytes in its queues (the kernel's
// smoothed round-trip time of the connection plus four deviations, from TCP_INFO, at most
// kMaxQueueAllowanceSeconds). A saturated link delays heartbeats behind bulk data; it delays the
// acknowledgements the kernel times just as much (the peer's kernel answers even while its
// process is stopped), so a heartbeat late by the link's own queueing is no sign of death, and
// on a quiet link the limit is the timeout (plus well under a millisecond).
inline constexpr double kMaxQueueAllowanceSeconds = 10;
double silence_limit_s(int fd, double heartbeat_timeout_s);

}  // namespace conveyor::transport
