#include "transport/bootstrap/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "common/error.h"

namespace conveyor::transport {

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    reset();
    fd_ = o.release();
  }
  return *this;
}

void Fd::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

namespace {

void set_nonblocking_nodelay(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

namespace {

// Where rank 0's service listens for MASTER_ADDR `host` (see socket.h).
in_addr listen_address(const std::string& host) {
  in_addr any{};
  any.s_addr = htonl(INADDR_ANY);
  in_addr literal{};
  if (inet_pton(AF_INET, host.c_str(), &literal) == 1) return literal;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) {
    throw Error(ErrorKind::kUsage,
                fmt::format("MASTER_ADDR '{}' does not resolve on rank 0's host", host),
                "set MASTER_ADDR to rank 0's host name or IP address");
  }
  const in_addr resolved = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
  freeaddrinfo(res);
  const bool loopback = (ntohl(resolved.s_addr) >> 24) == 127;
  if (host == "localhost") return resolved;
  // Debian maps a host's own name to 127.0.1.1 in /etc/hosts, while other hosts resolve it
  // to a real address: listening on the loopback address would lock them out.
  return loopback ? any : resolved;
}

}  // namespace

bool is_loopback_host(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr literal{};
  return inet_pton(AF_INET, host.c_str(), &literal) == 1 && (ntohl(literal.s_addr) >> 24) == 127;
}

Fd listen_tcp(const std::string& host, int port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  CONVEYOR_CHECK(fd, "bootstrap: socket() failed: {}", std::strerror(errno));
  int one = 1;
  // Lets a restarted job reuse a port whose old connections sit in TIME_WAIT; a live
  // listener on the port still makes bind() fail with EADDRINUSE.
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr = listen_address(host);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    if (e == EADDRINUSE)
      throw Error(ErrorKind::kUsage,
                  fmt::format("MASTER_PORT {} is already in use on this host (rank 0 cannot "
                              "start the rendezvous service there)",
                              port),
                  "another job or a leftover process holds it; pick a free MASTER_PORT");
    if (e == EADDRNOTAVAIL)
      throw Error(ErrorKind::kUsage,
                  fmt::format("MASTER_ADDR '{}' is not an address of rank 0's host", host),
                  "rank 0 runs the rendezvous service: start it on MASTER_ADDR's host, or set "
                  "MASTER_ADDR to rank 0's host");
    throw Error(ErrorKind::kRuntime,
                fmt::format("bootstrap: cannot bind {}:{}: {}", host, port, std::strerror(e)));
  }
  CONVEYOR_CHECK(::listen(fd.get(), 1024) == 0, "bootstrap: listen on port {} failed: {}", port,
                 std::strerror(errno));
  set_nonblocking_nodelay(fd.get());
  return fd;
}

Fd connect_tcp(const std::string& host, int port, Deadline deadline) {
  std::string last_error = "no attempt made";
  while (true) {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int gai = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
    if (gai != 0) {
      last_error = fmt::format("cannot resolve '{}': {}", host, gai_strerror(gai));
    } else {
      for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
        Fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
        if (!fd) continue;
        set_nonblocking_nodelay(fd.get());
        int rc = ::connect(fd.get(), ai->ai_addr, ai->ai_addrlen);
        if (rc != 0 && errno == EINPROGRESS) {
          pollfd p{fd.get(), POLLOUT, 0};
          int wait_ms = static_cast<int>(std::min<long>(deadline.remaining().count(), 1000));
          if (::poll(&p, 1, wait_ms) == 1) {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
            rc = err == 0 ? 0 : -1;
            errno = err == 0 ? ETIMEDOUT : err;
          } else {
            errno = ETIMEDOUT;
          }
        }
        if (rc == 0) {
          freeaddrinfo(res);
          return fd;
        }
        last_error = std::strerror(errno);
      }
      freeaddrinfo(res);
    }
    if (deadline.expired()) break;
    // The service may not be listening yet: retry with a short pause (a backoff, not
    // synchronisation: the deadline still bounds the whole wait).
    std::this_thread::sleep_for(std::chrono::milliseconds(
        std::min<long>(50, std::max<long>(1, deadline.remaining().count()))));
  }
  throw Error(
      ErrorKind::kRuntime,
      fmt::format("cannot reach the rendezvous service at {}:{} ({})", host, port, last_error),
      "is rank 0 running, and are MASTER_ADDR/MASTER_PORT the same on every rank? "
      "CONVEYOR_CONNECT_TIMEOUT sets how long to wait");
}

bool send_all(int fd, const uint8_t* data, size_t n, Deadline deadline) {
  size_t done = 0;
  while (done < n) {
    ssize_t w = ::send(fd, data + done, n - done, MSG_NOSIGNAL);
    if (w > 0) {
      done += static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (deadline.expired()) return false;
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, static_cast<int>(std::min<long>(deadline.remaining().count(), 100)));
      continue;
    }
    return false;
  }
  return true;
}

long read_some(int fd, uint8_t* buf, size_t n) {
  while (true) {
    ssize_t r = ::recv(fd, buf, n, 0);
    if (r >= 0) return r;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
    return -2;
  }
}

double silence_limit_s(int fd, double heartbeat_timeout_s) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 || len < sizeof info)
    return heartbeat_timeout_s;  // not TCP, or no estimate: the timeout alone
  const double queued_s = (double(info.tcpi_rtt) + 4.0 * double(info.tcpi_rttvar)) * 1e-6;
  return heartbeat_timeout_s + std::min(queued_s, kMaxQueueAllowanceSeconds);
}

}  // namespace conveyor::transport
