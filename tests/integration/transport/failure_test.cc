// Failure handling of the UCX transport: dead and frozen peers, a rank that ends without
// shutdown(), hostile connections, misconfiguration. (abort() is in the contract suite,
// contract_collectives_test.cc: the fake transport keeps it too.)
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "tests/integration/transport/multi_rank.h"
#include "transport/bootstrap/wire.h"

using namespace conveyor;
using namespace conveyor::transport;
using conveyor::test::JobSpec;
using conveyor::test::run_job;

namespace {

Tag tag(uint32_t step, uint16_t mb) {
  return (Tag{mb} << 24) | (step & 0xFFFFFF);
}

std::string this_host() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

// The lines of a rank's output in which UCX complains (warnings, errors, failed assertions):
// after a peer failure a survivor must end without any.
std::string ucx_complaints(const std::string& output) {
  std::string found, line;
  std::istringstream in(output);
  while (std::getline(in, line)) {
    if (line.find(" UCX ") != std::string::npos || line.find("Assertion") != std::string::npos ||
        line.find("mpool") != std::string::npos)
      found += line + "\n";
  }
  return found;
}

// Only what UCX says while it is torn down (request pool leaks, failed assertions, flushes
// that fail, endpoints left over). When a peer is killed under UCX_TLS=tcp, UCX may also log
// its own failed attempt to reconnect to it ("connect(...) failed: Connection refused"),
// during progress and before the bootstrap has told this rank; that is UCX reporting the
// death, not the teardown.
std::string ucx_teardown_complaints(const std::string& output) {
  std::string found, line;
  std::istringstream in(output);
  while (std::getline(in, line)) {
    for (const char* sign :
         {"mpool", "Assertion", "flush", "were not destroyed", "were not flushed", "backtrace"}) {
      if (line.find(sign) != std::string::npos) {
        found += line + "\n";
        break;
      }
    }
  }
  return found;
}

}  // namespace

TEST_CASE("a killed peer makes every survivor fail as a peer failure, naming it", "[transport]") {
  const std::string tls = GENERATE("sm", "tcp");
  const int victim = GENERATE(2, 0);  // a plain rank, and rank 0 (which hosts the service)
  INFO("UCX_TLS=" << tls << " victim=rank " << victim);
  JobSpec spec;
  spec.ucx_tls = tls;
  spec.world = 3;
  spec.timeout_s = 40;
  spec.capture_output = true;
  auto out = run_job(spec, [&](int rank, Options o) -> std::string {
    if (rank == victim) {
      auto t = Transport::create(o);
      ::kill(::getpid(), SIGKILL);
    }
    // Survivors wait on traffic that will never come: from the victim, and from each other
    // (a receive that only a dead job could leave hanging). The wait's deadline passing
    // would be Error(kRuntime): only detecting the death gives kPeerFailed.
    std::vector<uint8_t> buf(1 << 20);
    int other = 3 - rank - victim;
    std::unique_ptr<Transport> t;  // outlives the catch
    try {
      // A survivor may learn of the death while still in create() (rank 0 can return from
      // its final barrier and die before the service has answered everyone), or when posting.
      t = Transport::create(o);
      std::vector<Request> rs{t->irecv(victim, tag(1, 0), buf.data(), buf.size()),
                              t->irecv(other, tag(2, 0), buf.data(), 8)};
      t->wait_all(rs, Deadline::after_seconds(30));
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kPeerFailed) return "wrong kind: " + describe(e);
      return "peer failed: " + describe(e);
    }
    return std::string("wait_all returned although a peer died");
  });
  CHECK(out[victim].exit_code == 128 + SIGKILL);
  for (int r = 0; r < 3; ++r) {
    if (r == victim) continue;
    INFO("rank " << r << ": " << out[r].text);
    REQUIRE(out[r].exit_code == 0);
    CHECK(out[r].text.rfind("peer failed: ", 0) == 0);
    CHECK(out[r].text.find(fmt::format("rank {}", victim)) != std::string::npos);
    CHECK(ucx_teardown_complaints(out[r].output) == "");
  }
}

TEST_CASE("a frozen peer is named with its host, and survivors end with nothing left to UCX",
          "[transport]") {
  const std::string tls = GENERATE("sm", "tcp");
  const int victim = GENERATE(2, 0);  // a plain rank, and rank 0 (which hosts the service)
  INFO("UCX_TLS=" << tls << " victim=rank " << victim);
  JobSpec spec;
  spec.ucx_tls = tls;
  spec.world = 3;
  spec.timeout_s = 40;
  spec.capture_output = true;
  auto out = run_job(spec, [&](int rank, Options o) -> std::string {
    std::unique_ptr<Transport> t;  // outlives the catch
    // Large enough for UCX's rendezvous protocol: the send to the frozen rank stays in
    // flight, waiting for a receive that never comes, when the survivor gives up.
    std::vector<uint8_t> out_buf(1 << 20), in_buf(1 << 20);
    try {
      t = Transport::create(o);
      if (rank == victim) ::raise(SIGSTOP);  // alive, but silent: no heartbeats, no progress
      const int other = 3 - rank - victim;
      std::vector<Request> rs{t->isend(victim, tag(1, 0), out_buf.data(), out_buf.size()),
                              t->irecv(victim, tag(1, 0), in_buf.data(), in_buf.size()),
                              t->irecv(other, tag(2, 0), in_buf.data(), 8)};
      t->wait_all(rs, Deadline::after_seconds(30));
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kPeerFailed) return "wrong kind: " + describe(e);
      return "peer failed: " + describe(e);
    }
    return std::string("wait_all returned although a peer froze");
  });
  CHECK(out[victim].stopped);
  // Rank 0's peers know it by MASTER_ADDR; the service knows every other rank's host name.
  const std::string named = victim == 0 ? std::string("rank 0 (host 127.0.0.1, ")
                                        : fmt::format("rank 2 (host {}, pid ", this_host());
  for (int r = 0; r < 3; ++r) {
    if (r == victim) continue;
    INFO("rank " << r << ": " << out[r].text << "\noutput:\n" << out[r].output);
    // A crash in UCX's teardown would show as a signal here (abort: 134).
    REQUIRE(out[r].exit_code == 0);
    CHECK(out[r].text.rfind("peer failed: ", 0) == 0);
    CHECK(out[r].text.find(named) != std::string::npos);
    CHECK(out[r].text.find("went silent") != std::string::npos);
    CHECK(ucx_complaints(out[r].output) == "");
  }
}

TEST_CASE("a rank that ends without shutdown() is reported as failed", "[transport]") {
  JobSpec spec;
  auto out = run_job(spec, [](int rank, Options o) -> std::string {
    auto t = Transport::create(o);
    if (rank == 1) return "left";  // destructor runs without shutdown()
    t->barrier(Deadline::after_seconds(30));
    return "barrier passed";
  });
  CHECK(out[1].exit_code == 0);
  INFO(out[0].text);
  CHECK(out[0].exit_code == 3);
  CHECK(out[0].text.find("rank 1") != std::string::npos);
}

namespace {

int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  auto deadline = Deadline::after_seconds(20);
  while (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    REQUIRE(!deadline.expired());
    ::close(fd);
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // rank 0 not listening yet
  }
  return fd;
}

void send_bytes(int fd, const std::vector<uint8_t>& b) {
  REQUIRE(::send(fd, b.data(), b.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(b.size()));
}

// Reads until the service closes the connection (or 10 s pass); returns what came.
std::string read_until_closed(int fd) {
  std::string got;
  char buf[4096];
  auto deadline = Deadline::after_seconds(10);
  while (!deadline.expired()) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) != 1) continue;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return got;
    got.append(buf, static_cast<size_t>(n));
  }
  return got + "[still open]";
}

}  // namespace

TEST_CASE("hostile connections are refused without harming the job", "[transport]") {
  JobSpec spec;
  std::string token_reply, garbage_reply, oversized_reply;
  spec.parent_action = [&](int port) {
    // Garbage bytes.
    int g = connect_to(port);
    send_bytes(g, std::vector<uint8_t>(64, 0x5A));
    garbage_reply = read_until_closed(g);
    ::close(g);
    // A valid header with an absurd length (must be refused before any allocation).
    int big = connect_to(port);
    wire::ByteWriter h;
    h.u32(wire::kMagic).u32(static_cast<uint32_t>(wire::MsgType::kHello)).u64(1ull << 60);
    send_bytes(big, h.buffer());
    oversized_reply = read_until_closed(big);
    ::close(big);
    // A well-formed hello with the wrong token, claiming rank 1.
    int w = connect_to(port);
    wire::ByteWriter hello;
    hello.u32(wire::kVersion)
        .i32(1)
        .i32(2)
        .str("not-the-token")
        .str("fp-1")
        .str("addr")
        .str("evil")
        .i32(1);
    send_bytes(w, wire::encode_frame(wire::MsgType::kHello, hello.buffer()));
    token_reply = read_until_closed(w);
    ::close(w);
  };
  auto out = run_job(spec, [](int rank, Options o) -> std::string {
    auto t = Transport::create(o);
    test::wait_for_go();
    uint64_t v = 7 + rank, got = 0;
    std::vector<Request> rs{t->irecv(1 - rank, tag(0, 0), &got, sizeof got),
                            t->isend(1 - rank, tag(0, 0), &v, sizeof v)};
    t->wait_all(rs, Deadline::after_seconds(20));
    auto sum = t->all_reduce_sum(std::vector<double>{1.0}, Deadline::after_seconds(20));
    t->shutdown(Deadline::after_seconds(20));
    if (got != static_cast<uint64_t>(8 - rank) || sum[0] != 2.0) return "job damaged";
    return "ok";
  });
  for (auto& o : out) {
    INFO(o.text);
    CHECK(o.exit_code == 0);
  }
  CHECK(garbage_reply.empty());
  CHECK(oversized_reply.empty());
  CHECK(token_reply.find("wrong CONVEYOR_JOB_TOKEN") != std::string::npos);
}

TEST_CASE("a rank with another configuration fails the job with a usage error", "[transport]") {
  JobSpec spec;
  auto out = run_job(spec, [](int rank, Options o) -> std::string {
    if (rank == 1) o.fingerprint = "fp-2";
    auto t = Transport::create(o);
    return "created";
  });
  for (auto& o : out) {
    INFO(o.text);
    CHECK(o.exit_code == 2);
    CHECK(o.text.find("configuration differs") != std::string::npos);
  }
}

TEST_CASE("a rank with the wrong token is refused with a usage error", "[transport]") {
  JobSpec spec;
  auto out = run_job(spec, [](int rank, Options o) -> std::string {
    if (rank == 1) o.job_token = "wrong";
    o.connect_timeout_s = rank == 0 ? 1.5 : 20;  // rank 0 waits for a rank that never joins
    auto t = Transport::create(o);
    return "created";
  });
  INFO(out[1].text);
  CHECK(out[1].exit_code == 2);
  CHECK(out[1].text.find("wrong CONVEYOR_JOB_TOKEN") != std::string::npos);
  INFO(out[0].text);
  CHECK(out[0].exit_code == 1);  // rank 0 timed out waiting, naming the rendezvous
  CHECK(out[0].text.find("joined") != std::string::npos);
}

TEST_CASE("a rank missing at start-up is named, with the ranks that joined and their hosts",
          "[transport]") {
  JobSpec spec;
  spec.world = 2;  // ranks 0 and 1 of a 3-rank job start; rank 2 never does
  auto out = run_job(spec, [](int, Options o) -> std::string {
    o.world_size = 3;
    o.connect_timeout_s = 2;
    auto t = Transport::create(o);
    return "created";
  });
  const std::string host = this_host();
  // The rank whose wait ends first gives up (exit 1) and tells the other why (exit 3).
  CHECK(((out[0].exit_code == 1 && out[1].exit_code == 3) ||
         (out[0].exit_code == 3 && out[1].exit_code == 1) ||
         (out[0].exit_code == 1 && out[1].exit_code == 1)));
  for (int r : {0, 1}) {
    INFO("rank " << r << ": " << out[r].text);
    CHECK(out[r].text.find("rank 2 never joined") != std::string::npos);
    CHECK(out[r].text.find(fmt::format("rank 0 (host {}, pid ", host)) != std::string::npos);
    CHECK(out[r].text.find(fmt::format("rank 1 (host {}, pid ", host)) != std::string::npos);
  }
}

TEST_CASE("MASTER_PORT already in use gives a clear error", "[transport]") {
  int holder = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  a.sin_port = 0;
  REQUIRE(::bind(holder, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(holder, 1) == 0);
  socklen_t len = sizeof a;
  getsockname(holder, reinterpret_cast<sockaddr*>(&a), &len);
  int port = ntohs(a.sin_port);
  JobSpec spec;
  spec.world = 1;  // only rank 0 of a 2-rank job is started
  auto out = run_job(spec, [port](int, Options o) -> std::string {
    o.world_size = 2;
    o.master_port = port;
    auto t = Transport::create(o);
    return "created";
  });
  ::close(holder);
  INFO(out[0].text);
  CHECK(out[0].exit_code == 2);
  CHECK(out[0].text.find(fmt::format("MASTER_PORT {} is already in use", port)) !=
        std::string::npos);
}
