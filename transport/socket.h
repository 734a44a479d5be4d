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

// Listens on all interfaces at `port` (non-blocking). Throws Error(kUsage) when the port
// is in use, naming it.
Fd listen_tcp(int port);

// Connects to host:port, retrying refused or unreachable attempts until `deadline`
// (the service may not be up yet). Throws Error(kRuntime) at the deadline.
Fd connect_tcp(const std::string& host, int port, Deadline deadline);

// Writes all bytes, waiting for the socket to drain up to `deadline`. Returns false if
// the peer closed the connection or the deadline passed (never throws, never SIGPIPE).
bool send_all(int fd, const uint8_t* data, size_t n, Deadline deadline);

// Reads what is available without blocking. Returns bytes read, 0 on orderly close,
// -1 if nothing is available now, -2 on error.
long read_some(int fd, uint8_t* buf, size_t n);

}  // namespace conveyor::transport
