// Hellos an attacker (or a confused program) sends to the rendezvous port: forged log lines,
// escape codes, huge names, floods, other protocol versions. The service must refuse each,
// keep the log on one line per event and small, and carry on serving the job.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <sstream>

#include "common/error.h"
#include "common/net.h"
#include "transport/bootstrap/rendezvous_server.h"
#include "transport/bootstrap/socket.h"
#include "transport/bootstrap/wire.h"

using namespace conveyor;
using namespace conveyor::transport;

namespace {

// Everything the default logger writes while this object lives.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(text_)) {
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~LogCapture() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }
  std::string text() {
    sink_->flush();
    return text_.str();
  }

 private:
  std::ostringstream text_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};

// Sends one hello and returns the service's answer (a frame), waiting at most 10 s.
wire::Frame answer_to(int port, const wire::Hello& hello) {
  auto deadline = Deadline::after_seconds(10);
  Fd fd = connect_tcp("127.0.0.1", port, deadline);
  auto frame = wire::encode_frame(wire::MsgType::kHello, wire::encode_hello(hello));
  REQUIRE(send_all(fd.get(), frame.data(), frame.size(), deadline));
  wire::FrameDecoder decoder;
  uint8_t buf[4096];
  while (!deadline.expired()) {
    if (auto f = decoder.next(wire::kMaxPayload)) return *f;
    long n = read_some(fd.get(), buf, sizeof buf);
    if (n == 0 || n == -2) break;
    if (n > 0) decoder.feed(buf, static_cast<size_t>(n));
    pollfd p{fd.get(), POLLIN, 0};
    if (n == -1) ::poll(&p, 1, static_cast<int>(deadline.remaining().count()));
  }
  FAIL("the rendezvous service did not answer the hello");
  return {};
}

int count_lines_with(const std::string& log, const std::string& needle) {
  int n = 0;
  for (size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("hostile hellos are refused and logged escaped and rate-limited", "[transport]") {
  LogCapture capture;
  const int port = free_tcp_port();
  ServiceConfig cfg;
  cfg.world_size = 2;
  cfg.job_token = "the-real-token";
  cfg.fingerprint = "f";
  RendezvousServer service(port, cfg);

  wire::Hello forged;
  forged.rank = 1;
  forged.world_size = 2;
  forged.job_token = "a guess";
  forged.host = "vm\n[error] rank 3 died\x1b[31m" + std::string(60000, 'A');
  const Clock::time_point start = Clock::now();
  constexpr int kFlood = 50;
  for (int i = 0; i < kFlood; ++i) {
    wire::Frame f = answer_to(port, forged);
    REQUIRE(f.type == wire::MsgType::kReject);
    wire::ByteReader rd(f.payload);
    CHECK(rd.u32() == static_cast<uint32_t>(ErrorKind::kUsage));
    CHECK_THAT(rd.str(), Catch::Contains("wrong CONVEYOR_JOB_TOKEN"));
  }
  const double elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();

  const std::string log = capture.text();
  CHECK(log.find('\x1b') == std::string::npos);
  CHECK(log.find("\n[error] rank 3 died") == std::string::npos);
  CHECK(count_lines_with(log, "\\x0a[error] rank 3 died\\x1b[31m") >= 1);
  // At most a burst per window that has begun while the flood lasted.
  const int windows = 1 + static_cast<int>(elapsed_s / kRefusedLogWindowSeconds);
  const int refused_lines = count_lines_with(log, "wrong job token");
  CHECK(refused_lines >= 1);
  CHECK(refused_lines <= kRefusedLogBurst * windows);
  CHECK(std::count(log.begin(), log.end(), '\n') <= kRefusedLogBurst * windows);
  // Each line keeps 255 bytes of the name: the flood's log stays a few kB, not 3 MB.
  CHECK(log.size() <= static_cast<size_t>(kRefusedLogBurst * windows) * 600);

  SECTION("a hello of another protocol version is told so, and the job carries on") {
    wire::Hello old;
    old.version = wire::kVersion - 1;
    old.rank = 1;
    old.world_size = 2;
    wire::Frame f = answer_to(port, old);
    REQUIRE(f.type == wire::MsgType::kReject);
    wire::ByteReader rd(f.payload);
    rd.u32();
    CHECK_THAT(rd.str(), Catch::Contains("runs a different conveyor version"));
  }
  SECTION("the right token with a forged host is admitted under its escaped name") {
    wire::Hello honest = forged;
    honest.job_token = cfg.job_token;
    honest.fingerprint = cfg.fingerprint;
    honest.rank = 0;
    honest.host = "vm\n[error] rank 3 died";
    wire::Hello twin = honest;  // claims rank 0 a second time: fails the job, naming it
    honest.pid = 1;
    twin.pid = 2;
    // The first hello gets no answer until everyone joined; send it and keep it open.
    auto deadline = Deadline::after_seconds(10);
    Fd first = connect_tcp("127.0.0.1", port, deadline);
    auto frame = wire::encode_frame(wire::MsgType::kHello, wire::encode_hello(honest));
    REQUIRE(send_all(first.get(), frame.data(), frame.size(), deadline));
    wire::Frame f = answer_to(port, twin);
    REQUIRE(f.type == wire::MsgType::kReject);
    wire::ByteReader rd(f.payload);
    rd.u32();
    const std::string reason = rd.str();
    CHECK_THAT(reason, Catch::Contains("two processes claim rank 0 (second one on "
                                       "vm\\x0a[error] rank 3 died pid 2)"));
  }
}

TEST_CASE("a hello survives the codec and a short or padded one is refused", "[transport]") {
  const wire::Hello h{wire::kVersion, 3, 4, "token", "fingerprint", {1, 2, 3}, "node-7", 4242};
  auto bytes = wire::encode_hello(h);
  wire::Hello back = wire::decode_hello(bytes);
  CHECK(back.version == wire::kVersion);
  CHECK(back.rank == 3);
  CHECK(back.world_size == 4);
  CHECK(back.job_token == "token");
  CHECK(back.fingerprint == "fingerprint");
  CHECK(back.ucx_address == std::vector<uint8_t>{1, 2, 3});
  CHECK(back.host == "node-7");
  CHECK(back.pid == 4242);
  for (size_t cut = 0; cut < bytes.size(); ++cut)
    CHECK_THROWS_AS(wire::decode_hello({bytes.data(), cut}), Error);
  bytes.push_back(0);
  CHECK_THROWS_AS(wire::decode_hello(bytes), Error);
}

TEST_CASE("the service listens only on the address it was given", "[transport]") {
  const int port = free_tcp_port();
  ServiceConfig cfg;
  cfg.world_size = 2;
  cfg.job_token = "t";
  cfg.listen_host = "127.0.0.1";
  RendezvousServer service(port, cfg);
  auto try_connect = [&](const char* ip) {
    Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    REQUIRE(inet_pton(AF_INET, ip, &addr.sin_addr) == 1);
    return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  };
  CHECK(try_connect("127.0.0.1"));
  // Also this host, but not the address given: a service on 0.0.0.0 would accept it.
  CHECK_FALSE(try_connect("127.0.0.2"));
}

TEST_CASE("a MASTER_ADDR that is not this host's is refused with a usage error", "[transport]") {
  ServiceConfig cfg;
  cfg.world_size = 2;
  cfg.job_token = "t";
  cfg.listen_host = "192.0.2.1";  // TEST-NET-1: never an address of this host
  try {
    RendezvousServer service(free_tcp_port(), cfg);
    FAIL("listened on an address this host does not have");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kUsage);
    CHECK_THAT(e.message(), Catch::Contains("MASTER_ADDR '192.0.2.1' is not an address"));
  }
}
