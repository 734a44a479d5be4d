// In-process pieces of the transport: tag packing, the launch environment, the wire
// codec's defences, the failure report, RDMA discovery, the UCX probe.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "common/error.h"
#include "tests/fakes/fake_transport.h"
#include "tests/test_util.h"
#include "transport/bootstrap/job_failure.h"
#include "transport/bootstrap/socket.h"
#include "transport/bootstrap/wire.h"
#include "transport/rdma.h"
#include "transport/staging_transport.h"
#include "transport/tag.h"
#include "transport/transport.h"

using namespace conveyor;
using namespace conveyor::transport;

TEST_CASE("tags carry the source rank beside the caller's 48-bit tag, unchanged", "[transport]") {
  for (Tag t : {Tag{0}, Tag{1}, Tag{0x123456789ABC}, kMaxTag}) {
    for (int rank : {0, 1, 777, kMaxRanks - 1}) {
      const uint64_t packed = pack_tag(rank, t);
      CHECK(tag_source(packed) == rank);
      CHECK(unpack_tag(packed) == t);
    }
  }
  // Ranks and tags never collide; the transport's own warm-up bits are outside every tag.
  CHECK(pack_tag(3, 5) != pack_tag(4, 5));
  CHECK(pack_tag(3, 5) != pack_tag(3, 6));
  CHECK((kMaxTag & kInternalBits) == 0);
}

using conveyor::test::ScopedEnv;

TEST_CASE("options_from_env reads torchrun, Slurm and Open MPI variables", "[transport]") {
  SECTION("nothing set: a single-rank job") {
    ScopedEnv env({});
    auto o = options_from_env("fp");
    CHECK(o.rank == 0);
    CHECK(o.world_size == 1);
    CHECK(o.fingerprint == "fp");
    CHECK(o.failure_report_fd == -1);
  }
  SECTION("torchrun names") {
    ScopedEnv env({{"RANK", "3"},
                   {"WORLD_SIZE", "4"},
                   {"MASTER_ADDR", "node7"},
                   {"MASTER_PORT", "1234"},
                   {"CONVEYOR_JOB_TOKEN", "s3cret"},
                   {"CONVEYOR_UCX_PEER_ERROR_MODE", "1"},
                   {"CONVEYOR_FAILURE_REPORT_FD", "3"}});
    auto o = options_from_env("fp");
    CHECK(o.rank == 3);
    CHECK(o.world_size == 4);
    CHECK(o.master_addr == "node7");
    CHECK(o.master_port == 1234);
    CHECK(o.job_token == "s3cret");
    CHECK(o.ucx_peer_error_mode);
    CHECK(o.failure_report_fd == 3);
  }
  SECTION("Slurm") {
    ScopedEnv env({{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}, {"CONVEYOR_JOB_TOKEN", "t"}});
    auto o = options_from_env("fp");
    CHECK(o.rank == 1);
    CHECK(o.world_size == 2);
    CHECK(o.local_rank == 0);
    CHECK(o.master_addr == "127.0.0.1");
  }
  SECTION("Slurm: local rank, and rank 0's host from the job's node list") {
    ScopedEnv env({{"SLURM_PROCID", "3"},
                   {"SLURM_NTASKS", "4"},
                   {"SLURM_LOCALID", "1"},
                   {"SLURM_JOB_NODELIST", "gpu[07-08,11]"},
                   {"CONVEYOR_JOB_TOKEN", "t"}});
    auto o = options_from_env("fp");
    CHECK(o.rank == 3);
    CHECK(o.local_rank == 1);
    CHECK(o.master_addr == "gpu07");
  }
  SECTION("MASTER_ADDR wins over Slurm's node list") {
    ScopedEnv env({{"SLURM_PROCID", "0"},
                   {"SLURM_NTASKS", "2"},
                   {"SLURM_JOB_NODELIST", "n[1-2]"},
                   {"MASTER_ADDR", "10.0.0.5"},
                   {"CONVEYOR_JOB_TOKEN", "t"}});
    CHECK(options_from_env("fp").master_addr == "10.0.0.5");
  }
  SECTION("torchrun's agent holds MASTER_PORT: the rendezvous takes the next port") {
    ScopedEnv env({{"RANK", "0"},
                   {"WORLD_SIZE", "2"},
                   {"LOCAL_RANK", "0"},
                   {"MASTER_PORT", "29500"},
                   {"TORCHELASTIC_RUN_ID", "none"},
                   {"CONVEYOR_JOB_TOKEN", "t"}});
    CHECK(options_from_env("fp").master_port == 29501);
  }
  SECTION("CONVEYOR_RDZV_PORT wins over MASTER_PORT") {
    ScopedEnv env({{"RANK", "0"},
                   {"WORLD_SIZE", "2"},
                   {"MASTER_PORT", "29500"},
                   {"TORCHELASTIC_RUN_ID", "none"},
                   {"CONVEYOR_RDZV_PORT", "40000"},
                   {"CONVEYOR_JOB_TOKEN", "t"}});
    CHECK(options_from_env("fp").master_port == 40000);
  }
  SECTION("Open MPI") {
    ScopedEnv env({{"OMPI_COMM_WORLD_RANK", "5"},
                   {"OMPI_COMM_WORLD_SIZE", "8"},
                   {"CONVEYOR_JOB_TOKEN", "t"}});
    auto o = options_from_env("fp");
    CHECK(o.rank == 5);
    CHECK(o.world_size == 8);
  }
  SECTION("torchrun names win over Slurm's") {
    ScopedEnv env({{"RANK", "0"},
                   {"WORLD_SIZE", "2"},
                   {"SLURM_PROCID", "9"},
                   {"SLURM_NTASKS", "16"},
                   {"CONVEYOR_JOB_TOKEN", "t"}});
    auto o = options_from_env("fp");
    CHECK(o.rank == 0);
    CHECK(o.world_size == 2);
  }
}

TEST_CASE("options_from_env rejects bad values with usage errors", "[transport]") {
  auto usage_error = [](std::initializer_list<std::pair<const char*, const char*>> vars,
                        const std::string& mention) {
    ScopedEnv env(vars);
    try {
      options_from_env("fp");
      FAIL("accepted a bad environment");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::kUsage);
      CHECK(e.message().find(mention) != std::string::npos);
    }
  };
  usage_error({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"CONVEYOR_JOB_TOKEN", "t"}}, "not below");
  usage_error({{"RANK", "x"}, {"WORLD_SIZE", "2"}, {"CONVEYOR_JOB_TOKEN", "t"}}, "RANK 'x'");
  usage_error({{"RANK", "0"}, {"WORLD_SIZE", "2"}}, "CONVEYOR_JOB_TOKEN");
  usage_error({{"RANK", "0"}}, "no world size");
  usage_error({{"MASTER_PORT", "70000"}}, "MASTER_PORT");
  usage_error({{"CONVEYOR_UCX_PEER_ERROR_MODE", "yes"}}, "must be 0 or 1");
  usage_error({{"CONVEYOR_FAILURE_REPORT_FD", "-1"}}, "CONVEYOR_FAILURE_REPORT_FD");
  usage_error({{"LOCAL_RANK", "-1"}}, "LOCAL_RANK '-1'");
  usage_error({{"CONVEYOR_RDZV_PORT", "0"}}, "CONVEYOR_RDZV_PORT '0'");
  usage_error({{"SLURM_PROCID", "0"},
               {"SLURM_NTASKS", "2"},
               {"SLURM_JOB_NODELIST", "n[1-"},
               {"CONVEYOR_JOB_TOKEN", "t"}},
              "SLURM_JOB_NODELIST: host list 'n[1-' is malformed");
}

TEST_CASE("a rank without a world size, or a world size without a rank, names what is missing",
          "[transport]") {
  auto message = [](std::initializer_list<std::pair<const char*, const char*>> vars) {
    ScopedEnv env(vars);
    try {
      options_from_env("fp");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::kUsage);
      return e.message();
    }
    FAIL("accepted half a launch environment");
    return std::string();
  };
  const auto no_rank = message({{"WORLD_SIZE", "2"}});
  CHECK_THAT(no_rank, Catch::Contains("WORLD_SIZE is set but no rank is"));
  CHECK_THAT(no_rank, Catch::Contains("RANK"));
  const auto no_size = message({{"RANK", "0"}});
  CHECK_THAT(no_size, Catch::Contains("RANK is set but no world size is"));
  CHECK_THAT(message({{"SLURM_NTASKS", "2"}}),
             Catch::Contains("SLURM_NTASKS is set but no rank is (set SLURM_PROCID"));
  CHECK_THAT(message({{"OMPI_COMM_WORLD_RANK", "1"}}),
             Catch::Contains("OMPI_COMM_WORLD_RANK is set but no world size is (set "
                             "OMPI_COMM_WORLD_SIZE"));
}

TEST_CASE("environment durations are finite seconds in range, integers are decimal",
          "[transport]") {
  auto refused = [](std::initializer_list<std::pair<const char*, const char*>> vars,
                    const std::string& mention) {
    ScopedEnv env(vars);
    try {
      options_from_env("fp");
      FAIL("accepted a bad environment");
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::kUsage);
      CHECK_THAT(e.message(), Catch::Contains(mention));
    }
  };
  // inf or 1e300 used to become a deadline in the past: the rendezvous gave up at once.
  for (const char* bad : {"inf", "1e300", "nan", "-1", "0", "5s", "0x10", "1e-9"}) {
    INFO(bad);
    refused({{"CONVEYOR_CONNECT_TIMEOUT", bad}},
            std::string("environment variable CONVEYOR_CONNECT_TIMEOUT '") + bad +
                "' is not a number of seconds in [");
    refused({{"CONVEYOR_HEARTBEAT_TIMEOUT", bad}},
            std::string("environment variable CONVEYOR_HEARTBEAT_TIMEOUT '") + bad + "'");
  }
  {
    ScopedEnv env({{"CONVEYOR_CONNECT_TIMEOUT", "604800"}, {"CONVEYOR_HEARTBEAT_TIMEOUT", "0.5"}});
    const auto o = options_from_env("fp");
    CHECK(o.connect_timeout_s == 604800);
    CHECK(o.heartbeat_timeout_s == 0.5);
  }
  // strtol took leading blanks, '+' and stopped at nothing; the checked parser takes digits.
  refused({{"RANK", " 1"}, {"WORLD_SIZE", "2"}, {"CONVEYOR_JOB_TOKEN", "t"}},
          "environment variable RANK ' 1'");
  refused({{"RANK", "+1"}, {"WORLD_SIZE", "2"}, {"CONVEYOR_JOB_TOKEN", "t"}},
          "environment variable RANK '+1'");
  refused({{"RANK", "0"}, {"WORLD_SIZE", "16384"}, {"CONVEYOR_JOB_TOKEN", "t"}},
          "environment variable WORLD_SIZE '16384' is not a number of ranks in [1, 16383]");
  refused({{"RANK", "0"}, {"WORLD_SIZE", "99999999999999999999"}, {"CONVEYOR_JOB_TOKEN", "t"}},
          "WORLD_SIZE '99999999999999999999'");
  refused({{"CONVEYOR_FAILURE_REPORT_FD", "3.0"}}, "CONVEYOR_FAILURE_REPORT_FD '3.0'");
}

TEST_CASE("a failure report reaches the supervisor's socket intact, and junk is refused",
          "[transport]") {
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
  JobFailure f;
  f.rank = 2;
  f.kind = ErrorKind::kPeerFailed;
  f.cause = FailureCause::kSilent;
  f.host = "node7";
  f.pid = 4242;
  f.reason = "rank 2 (host node7, pid 4242) went silent";
  send_failure_report(sv[1], f);
  uint8_t buf[4096];
  const ssize_t n = ::recv(sv[0], buf, sizeof buf, MSG_DONTWAIT);
  REQUIRE(n > 0);
  auto got = decode_failure_report({buf, static_cast<size_t>(n)});
  REQUIRE(got);
  CHECK(got->rank == 2);
  CHECK(got->kind == ErrorKind::kPeerFailed);
  CHECK(got->cause == FailureCause::kSilent);
  CHECK(got->host == "node7");
  CHECK(got->pid == 4242);
  CHECK(got->reason == f.reason);
  // Truncated, trailing bytes, another magic, an unknown cause: all refused.
  auto bytes = encode_failure_report(f);
  CHECK_FALSE(decode_failure_report({bytes.data(), bytes.size() - 1}));
  auto longer = bytes;
  longer.push_back(0);
  CHECK_FALSE(decode_failure_report(longer));
  auto other = bytes;
  other[0] ^= 1;
  CHECK_FALSE(decode_failure_report(other));
  JobFailure odd = f;
  odd.cause = static_cast<FailureCause>(99);
  CHECK_FALSE(decode_failure_report(encode_failure_report(odd)));
  // Nobody listening (the supervisor is gone): sending neither blocks nor raises SIGPIPE.
  ::close(sv[0]);
  send_failure_report(sv[1], f);
  send_failure_report(-1, f);
  ::close(sv[1]);
}

TEST_CASE("the frame decoder refuses garbage and oversized lengths before allocating",
          "[transport]") {
  SECTION("round trip, fed one byte at a time") {
    wire::ByteWriter w;
    w.u32(7).i32(-3).u64(1ull << 40).str("hello");
    auto frame = wire::encode_frame(wire::MsgType::kCollective, w.buffer());
    wire::FrameDecoder d;
    std::optional<wire::Frame> f;
    for (uint8_t b : frame) {
      CHECK(!f);
      d.feed(&b, 1);
      f = d.next(wire::kMaxPayload);
    }
    REQUIRE(f);
    CHECK(f->type == wire::MsgType::kCollective);
    wire::ByteReader r(f->payload);
    CHECK(r.u32() == 7);
    CHECK(r.i32() == -3);
    CHECK(r.u64() == (1ull << 40));
    CHECK(r.str() == "hello");
    CHECK(r.at_end());
  }
  SECTION("bad magic") {
    wire::FrameDecoder d;
    const char junk[] = "GET / HTTP/1.1\r\n";
    d.feed(reinterpret_cast<const uint8_t*>(junk), 4);
    CHECK_THROWS_AS(d.next(wire::kMaxPayload), Error);
  }
  SECTION("oversized length") {
    wire::ByteWriter h;
    h.u32(wire::kMagic)
        .u32(static_cast<uint32_t>(wire::MsgType::kHello))
        .u64(wire::kMaxHelloPayload + 1);
    wire::FrameDecoder d;
    d.feed(h.buffer().data(), h.buffer().size());
    CHECK_THROWS_AS(d.next(wire::kMaxHelloPayload), Error);
  }
  SECTION("unknown type") {
    wire::ByteWriter h;
    h.u32(wire::kMagic).u32(999).u64(0);
    wire::FrameDecoder d;
    d.feed(h.buffer().data(), h.buffer().size());
    CHECK_THROWS_AS(d.next(wire::kMaxPayload), Error);
  }
  SECTION("a payload that lies about an inner length") {
    wire::ByteWriter w;
    w.u64(1000);  // claims 1000 bytes follow; none do
    wire::ByteReader r(w.buffer());
    CHECK_THROWS_AS(r.bytes(), Error);
  }
}

TEST_CASE("RDMA discovery works with or without RDMA hardware", "[transport]") {
  auto d = rdma::discover();
  if (d.devices.empty()) {
    CHECK(!d.note.empty());  // says why
    CHECK(rdma::pick_net_device(d, 0).empty());
  }
  for (const auto& dev : d.devices) {
    CHECK(!dev.name.empty());
    for (const auto& p : dev.ports) CHECK(p.number >= 1);
  }
}

TEST_CASE("pick_net_device prefers an active port near the GPU, then the fastest", "[transport]") {
  rdma::Discovery d;
  rdma::Port down{1, "PORT_DOWN", "InfiniBand", 4, 53.125, 0, {}};
  rdma::Port fast{1, "PORT_ACTIVE", "InfiniBand", 4, 53.125, 0, {}};
  rdma::Port slow{1, "PORT_ACTIVE", "InfiniBand", 4, 25.78125, 0, {}};
  d.devices.push_back({"mlx5_0", "", 0, "", {down}});
  d.devices.push_back({"mlx5_1", "", 0, "", {slow}});
  d.devices.push_back({"mlx5_2", "", 1, "", {fast}});
  CHECK(rdma::pick_net_device(d, 0) == "mlx5_1:1");
  CHECK(rdma::pick_net_device(d, 1) == "mlx5_2:1");
  CHECK(rdma::pick_net_device(d, -1) == "mlx5_2:1");
}

TEST_CASE("the ranks of a host are dealt out over equally fast NICs near their GPU",
          "[transport]") {
  // A fake 8-GPU host: four 400G ports on NUMA node 0, two on node 1, one slower, one down.
  rdma::Discovery d;
  rdma::Port fast{1, "PORT_ACTIVE", "InfiniBand", 4, 100, 0, {}};
  rdma::Port slow{1, "PORT_ACTIVE", "InfiniBand", 4, 25, 0, {}};
  rdma::Port down{1, "PORT_DOWN", "InfiniBand", 4, 100, 0, {}};
  for (const char* name : {"mlx5_3", "mlx5_1", "mlx5_0", "mlx5_2"})
    d.devices.push_back({name, "", 0, "", {fast}});
  d.devices.push_back({"mlx5_4", "", 1, "", {fast}});
  d.devices.push_back({"mlx5_5", "", 1, "", {fast}});
  d.devices.push_back({"mlx5_6", "", 1, "", {slow}});
  d.devices.push_back({"mlx5_7", "", 1, "", {down}});
  std::vector<std::string> node0, node1, no_gpu;
  for (int local = 0; local < 5; ++local) {
    node0.push_back(rdma::pick_net_device(d, 0, local));
    node1.push_back(rdma::pick_net_device(d, 1, local));
    no_gpu.push_back(rdma::pick_net_device(d, -1, local));
  }
  CHECK(node0 ==
        std::vector<std::string>{"mlx5_0:1", "mlx5_1:1", "mlx5_2:1", "mlx5_3:1", "mlx5_0:1"});
  CHECK(node1 ==
        std::vector<std::string>{"mlx5_4:1", "mlx5_5:1", "mlx5_4:1", "mlx5_5:1", "mlx5_4:1"});
  CHECK(no_gpu ==
        std::vector<std::string>{"mlx5_0:1", "mlx5_1:1", "mlx5_2:1", "mlx5_3:1", "mlx5_4:1"});
  // A NUMA node without an active port falls back to every active port.
  CHECK(rdma::pick_net_device(d, 3, 5) == "mlx5_5:1");
}

TEST_CASE("UCX takes a buffer's memory type from the caller and refuses what it cannot reach",
          "[transport]") {
  // One rank: UCX's context and worker, no peers. Host memory registers as host memory.
  auto t = Transport::create(Options{});
  std::vector<float> host(1024);
  {
    const auto region =
        t->register_memory(host.data(), host.size() * sizeof(float), MemoryType::kHost);
    CHECK(region.memory_type() == MemoryType::kHost);
  }
  // Host memory given as device memory: a UCX without CUDA support refuses device memory
  // outright (StagingTransport is the way across); one with CUDA support asks CUDA once, at
  // registration, and CUDA does not know the pointer.
  try {
    t->register_memory(host.data(), host.size() * sizeof(float), MemoryType::kDevice);
    FAIL("host memory was registered as device memory");
  } catch (const Error& e) {
    INFO(e.message());
    CHECK(e.kind() == ErrorKind::kRuntime);
    CHECK(e.message().find(t->device_memory_direct() ? "CUDA does not know it"
                                                     : "has no CUDA support") != std::string::npos);
  }
  t->shutdown(Deadline::after_seconds(5));
}

TEST_CASE("the silence a rank is allowed is the heartbeat timeout plus its link's queueing",
          "[transport]") {
  // A quiet loopback connection: the kernel's round-trip estimate is microseconds.
  Fd listener = listen_tcp("127.0.0.1", 0);
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  Fd client = connect_tcp("127.0.0.1", ntohs(addr.sin_port), Deadline::after_seconds(10));
  const uint8_t byte = 1;
  REQUIRE(send_all(client.get(), &byte, 1, Deadline::after_seconds(10)));
  const double limit = silence_limit_s(client.get(), 1.5);
  CHECK(limit >= 1.5);
  CHECK(limit < 1.5 + 0.05);
  // Not a TCP connection: no estimate, the timeout alone.
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  CHECK(silence_limit_s(pipe_fds[0], 0.5) == 0.5);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
}

TEST_CASE("a staged receive that fails gives its bounce buffer back, and a late one keeps it",
          "[transport]") {
  // Both ranks over one fake fabric; rank 1 stages "device" memory (host memory here, copied
  // with memcpy) through bounce buffers, whose allocations are counted.
  conveyor::test::FakeFabric fabric(2);
  conveyor::test::FakeTransport sender(fabric, 0);
  int allocations = 0;
  StagingOptions options;
  options.to_host = [](void* host, const void* staged, size_t n) { std::memcpy(host, staged, n); };
  options.from_host = [](void* staged, const void* host, size_t n) {
    std::memcpy(staged, host, n);
  };
  options.alloc_host = [&](size_t n) {
    ++allocations;
    return std::malloc(n);
  };
  options.free_host = [](void* p) { std::free(p); };
  StagingTransport receiver(std::make_unique<conveyor::test::FakeTransport>(fabric, 1), options);
  std::vector<uint8_t> sent(32, 7), into(16, 0);
  const auto soon = [] { return Deadline::after_seconds(10); };

  // A size mismatch: the wait fails, nothing reaches the caller's buffer, and the bounce
  // buffer is free for the next receive of that size (no second allocation).
  Request bad = receiver.irecv(0, 1, into.data(), 16, nullptr, MemoryType::kDevice);
  Request s1 = sender.isend(1, 1, sent.data(), 32, nullptr, MemoryType::kHost);
  REQUIRE_THROWS_AS(receiver.wait(bad, soon()), Error);
  CHECK(into == std::vector<uint8_t>(16, 0));
  sender.wait(s1, soon());
  Request late = receiver.irecv(0, 2, into.data(), 16, nullptr, MemoryType::kDevice);
  CHECK(allocations == 1);
  // A receive that is only late keeps its buffer (the transport may still write it)...
  REQUIRE_THROWS_AS(receiver.wait(late, Deadline::after_seconds(0.05)), Error);
  Request other = receiver.irecv(0, 3, into.data(), 16, nullptr, MemoryType::kDevice);
  CHECK(allocations == 2);
  // ...and completes normally once its message comes.
  std::vector<uint8_t> small(16, 9);
  Request s2 = sender.isend(1, 2, small.data(), 16, nullptr, MemoryType::kHost);
  receiver.wait(late, soon());
  CHECK(into == small);
  sender.wait(s2, soon());
  receiver.cancel(other);
}
