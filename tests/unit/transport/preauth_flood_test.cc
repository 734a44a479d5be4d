// The rendezvous port under a flood of connections that never authenticate: anyone on the
// host can open them. The service must keep its descriptors bounded (rank 0's checkpoint
// saves need descriptors too) and still admit the job's real ranks.
//
// The service runs in a forked child whose descriptor limit is lowered below the flood, so
// a service that kept every connection would run out; the test process opens the flood.
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <arpa/inet.h>

#include <string>
#include <vector>

#include "common/error.h"
#include "common/net.h"
#include "transport/bootstrap/rendezvous_server.h"
#include "transport/bootstrap/socket.h"
#include "transport/bootstrap/wire.h"

using namespace conveyor;
using namespace conveyor::transport;

namespace {

constexpr rlim_t kServiceFdLimit = 256;  // the child's RLIMIT_NOFILE: below the flood
constexpr int kWave = 500;               // idle connections per wave; three waves
constexpr int kWorld = 2;

int open_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    --n;  // the directory's own descriptor
  }
  return n;
}

// The service's process: serves until its command pipe closes. On 'c' it answers
// "<open descriptors> <1 if it can still open a file>\n".
[[noreturn]] void serve_in_child(int port, int ready_fd, int cmd_fd, int reply_fd) {
  try {
    rlimit lim{};
    ::getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = kServiceFdLimit;
    ::setrlimit(RLIMIT_NOFILE, &lim);
    ServiceConfig cfg;
    cfg.world_size = kWorld;
    cfg.job_token = "the-real-token";
    cfg.fingerprint = "f";
    cfg.heartbeat_timeout_s = 600;  // the test's ranks send no heartbeats
    RendezvousServer service(port, cfg);
    (void)!::write(ready_fd, "r", 1);
    char c;
    while (::read(cmd_fd, &c, 1) == 1) {
      const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // what a save needs
      const std::string answer =
          std::to_string(open_fds() - (fd >= 0 ? 1 : 0)) + (fd >= 0 ? " 1\n" : " 0\n");
      if (fd >= 0) ::close(fd);
      (void)!::write(reply_fd, answer.data(), answer.size());
    }
  } catch (...) {
    ::_exit(1);
  }
  ::_exit(0);
}

// Opens `n` connections to the port without waiting for them to complete, never sending
// a byte.
void flood(int port, int n, std::vector<Fd>& into) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < n; ++i) {
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    REQUIRE(fd);
    (void)::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    into.push_back(std::move(fd));
  }
}

// Connects and sends a hello; returns the connection (the answer is read later).
Fd say_hello(int port, const wire::Hello& hello, Deadline deadline) {
  Fd fd = connect_tcp("127.0.0.1", port, deadline);
  auto frame = wire::encode_frame(wire::MsgType::kHello, wire::encode_hello(hello));
  REQUIRE(send_all(fd.get(), frame.data(), frame.size(), deadline));
  return fd;
}

// The first frame other than a heartbeat the service sends on `fd`, or nothing by the
// deadline.
std::optional<wire::Frame> first_answer(int fd, Deadline deadline) {
  wire::FrameDecoder decoder;
  uint8_t buf[4096];
  while (!deadline.expired()) {
    if (auto f = decoder.next(wire::kMaxPayload)) {
      if (f->type == wire::MsgType::kHeartbeat) continue;
      return f;
    }
    long n = read_some(fd, buf, sizeof buf);
    if (n == 0 || n == -2) return std::nullopt;
    if (n > 0) decoder.feed(buf, static_cast<size_t>(n));
    pollfd p{fd, POLLIN, 0};
    if (n == -1) ::poll(&p, 1, static_cast<int>(std::min<long>(deadline.remaining().count(), 100)));
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("a flood of unauthenticated connections neither starves the ranks nor the descriptors",
          "[transport][hardening]") {
  rlimit own{};
  ::getrlimit(RLIMIT_NOFILE, &own);
  constexpr rlim_t kNeeded = 3 * kWave + 64;
  if (own.rlim_cur < kNeeded && own.rlim_max >= kNeeded) {
    own.rlim_cur = kNeeded;
    ::setrlimit(RLIMIT_NOFILE, &own);
  }
  if (own.rlim_cur < kNeeded) {
    WARN("SKIPPED: the test process may open only " << own.rlim_cur << " descriptors, not "
                                                    << kNeeded);
    return;
  }
  const int port = free_tcp_port();
  int ready[2], cmd[2], reply[2];
  REQUIRE(::pipe(ready) == 0);
  REQUIRE(::pipe(cmd) == 0);
  REQUIRE(::pipe(reply) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(ready[0]);
    ::close(cmd[1]);
    ::close(reply[0]);
    serve_in_child(port, ready[1], cmd[0], reply[1]);
  }
  ::close(ready[1]);
  ::close(cmd[0]);
  ::close(reply[1]);
  // Whatever happens below, the child is told to stop (its command pipe closes) and reaped.
  struct Reap {
    pid_t pid;
    int cmd_fd, reply_fd, ready_fd;
    ~Reap() {
      ::close(cmd_fd);
      ::close(reply_fd);
      ::close(ready_fd);
      int status = 0;
      // A child stuck in the service's destructor must not hang the suite.
      for (int i = 0; i < 100 && ::waitpid(pid, &status, WNOHANG) == 0; ++i) ::usleep(20000);
      if (::waitpid(pid, &status, WNOHANG) == 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
      }
    }
  } reap{child, cmd[1], reply[0], ready[0]};
  char c = 0;
  REQUIRE(::read(ready[0], &c, 1) == 1);

  // "<open descriptors> <can open a file>" from the service's process.
  auto ask = [&] {
    REQUIRE(::write(cmd[1], "c", 1) == 1);
    std::string line;
    while (line.empty() || line.back() != '\n') {
      char ch;
      REQUIRE(::read(reply[0], &ch, 1) == 1);
      line += ch;
    }
    const auto space = line.find(' ');
    return std::pair{std::stoi(line.substr(0, space)), line.substr(space + 1) == "1\n"};
  };
  const int baseline = ask().first;

  wire::Hello hello;
  hello.world_size = kWorld;
  hello.job_token = "the-real-token";
  hello.fingerprint = "f";
  hello.host = "vm";
  const auto deadline = Deadline::after_seconds(30);  // a hang fails, it does not block
  std::vector<Fd> idle;
  std::vector<Fd> ranks;
  // Each rank connects behind a wave of idle connections and before the next one.
  for (int rank = 0; rank < kWorld; ++rank) {
    flood(port, kWave, idle);
    hello.rank = rank;
    hello.pid = 100 + rank;
    try {
      ranks.push_back(say_hello(port, hello, deadline));
    } catch (const Error& e) {
      FAIL("rank " << rank << " could not reach the service under the flood: " << e.message());
    }
  }
  flood(port, kWave, idle);
  for (int rank = 0; rank < kWorld; ++rank) {
    auto f = first_answer(ranks[rank].get(), deadline);
    INFO("rank " << rank);
    REQUIRE(f.has_value());
    CHECK(f->type == wire::MsgType::kWelcome);
  }
  // The service accepts in arrival order: once it answers a hello sent after the whole
  // flood, it has accepted (and let go of) every idle connection before it.
  hello.rank = 1;
  hello.job_token = "a guess";
  Fd late;
  try {
    late = say_hello(port, hello, deadline);
  } catch (const Error& e) {
    FAIL("a hello after the flood could not reach the service: " << e.message());
  }
  auto answer = first_answer(late.get(), deadline);
  REQUIRE(answer.has_value());
  CHECK(answer->type == wire::MsgType::kReject);

  const auto [fds, can_open] = ask();
  INFO("the service's process had " << baseline << " descriptors open before the flood of "
                                    << 3 * kWave << " connections, " << fds << " after");
  CHECK(can_open);
  // The listener is in the baseline; the ranks' connections and at most the bound of
  // unauthenticated ones come on top (the rejected one may still be open).
  CHECK(fds <= baseline + kWorld + static_cast<int>(kMaxPreAuthConnections) + 1);
}
