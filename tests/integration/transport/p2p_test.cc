// Point-to-point and collectives across processes, for every UCX transport we run on
// one host: shared memory ("sm": sysv/posix + cma) and TCP loopback.
#include <catch2/catch.hpp>

#include <cstring>
#include <thread>

#include "common/error.h"
#include "pipeline/parallel/ring_all_reduce.h"
#include "tests/integration/transport/multi_rank.h"

using namespace conveyor;
using namespace conveyor::transport;
using conveyor::test::check_pattern;
using conveyor::test::fill_pattern;
using conveyor::test::JobSpec;
using conveyor::test::run_job;

namespace {

Deadline soon() {
  return Deadline::after_seconds(20);
}

void require_all_ok(const std::vector<test::RankOutcome>& out) {
  for (size_t r = 0; r < out.size(); ++r) {
    INFO("rank " << r << ": " << out[r].text);
    REQUIRE(out[r].exit_code == 0);
  }
}

// The tests' own tag layout (the transport never looks inside a tag).
constexpr uint8_t kForwardDir = 0, kBackwardDir = 1;
Tag tag(uint32_t step, uint16_t mb, uint8_t chunk = 0, uint8_t dir = kForwardDir) {
  return (Tag{dir} << 44) | (Tag{chunk} << 36) | (Tag{mb} << 20) | (step & 0xFFFFF);
}

std::string describe_test_tag(Tag t) {
  return fmt::format("test message {} of step {}", (t >> 20) & 0xFFFF, t & 0xFFFFF);
}

}  // namespace

TEST_CASE("messages of 0 B to 64 MiB arrive byte-exact in both directions", "[transport]") {
  const std::string tls = GENERATE("sm", "tcp");
  INFO("UCX_TLS=" << tls);
  JobSpec spec;
  spec.ucx_tls = tls;
  auto out = run_job(spec, [](int rank, Options o) {
    auto t = Transport::create(o);
    const int peer = 1 - rank;
    const std::vector<size_t> sizes = {0, 1, 4096, 1u << 20, 64u << 20};
    std::vector<uint8_t> send_buf(64u << 20), recv_buf((64u << 20) + 1);
    // The big buffers are registered (memh path); the small messages are not required to be.
    auto send_mr = t->register_memory(send_buf.data(), send_buf.size(), MemoryType::kHost);
    auto recv_mr = t->register_memory(recv_buf.data(), recv_buf.size(), MemoryType::kHost);
    for (size_t i = 0; i < sizes.size(); ++i) {
      size_t n = sizes[i];
      fill_pattern(send_buf.data(), n, 1000 * rank + i);
      recv_buf[n] = 0xAB;  // guard byte just past the message
      std::vector<Request> rs;
      rs.push_back(t->irecv(peer, tag(7, static_cast<uint16_t>(i)), recv_buf.data(), n, &recv_mr));
      rs.push_back(t->isend(peer, tag(7, static_cast<uint16_t>(i)), send_buf.data(), n));
      t->wait_all(rs, soon());
      long bad = check_pattern(recv_buf.data(), n, 1000 * peer + i);
      if (bad >= 0) return fmt::format("size {}: first wrong byte at {}", n, bad);
      if (recv_buf[n] != 0xAB) return fmt::format("size {}: wrote past the end", n);
    }
    send_mr = MemoryRegion();
    recv_mr = MemoryRegion();
    t->shutdown(soon());
    return std::string("ok");
  });
  require_all_ok(out);
}

TEST_CASE("tags are matched whatever the order receives are posted in", "[transport]") {
  const std::string tls = GENERATE("sm", "tcp");
  INFO("UCX_TLS=" << tls);
  JobSpec spec;
  spec.ucx_tls = tls;
  auto out = run_job(spec, [](int rank, Options o) -> std::string {
    auto t = Transport::create(o);
    constexpr int kN = 12;
    // Mixed eager and rendezvous sizes; tags differ in every field.
    auto size_of = [](int i) { return static_cast<size_t>(i % 3 == 0 ? 300000 : 64 + i); };
    auto tag_of = [](int i) {
      return tag(100 + i % 2, static_cast<uint16_t>(i / 2), static_cast<uint8_t>(i % 3),
                 static_cast<uint8_t>(i % 2 ? kBackwardDir : kForwardDir));
    };
    if (rank == 0) {
      std::vector<std::vector<uint8_t>> bufs(kN);
      std::vector<Request> rs;
      for (int i = 0; i < kN; ++i) {
        bufs[i].resize(size_of(i));
        fill_pattern(bufs[i].data(), bufs[i].size(), i);
        rs.push_back(t->isend(1, tag_of(i), bufs[i].data(), bufs[i].size()));
      }
      t->wait_all(rs, soon());
    } else {
      std::vector<std::vector<uint8_t>> bufs(kN);
      std::vector<Request> rs(kN);
      for (int i = kN - 1; i >= 0; --i) {  // reverse order
        bufs[i].resize(size_of(i));
        rs[i] = t->irecv(0, tag_of(i), bufs[i].data(), bufs[i].size());
      }
      for (int i = kN - 1; i >= 0; --i) {
        t->wait(rs[i], soon());
        if (check_pattern(bufs[i].data(), bufs[i].size(), i) >= 0)
          return fmt::format("message {} landed in the wrong buffer", i);
      }
      // Same tag twice: matched in posting order.
      std::vector<uint8_t> a(16), b(16);
      auto ra = t->irecv(0, tag(5, 5), a.data(), 16);
      auto rb = t->irecv(0, tag(5, 5), b.data(), 16);
      t->wait(rb, soon());
      t->wait(ra, soon());
      if (a[0] != 1 || b[0] != 2) return "same-tag messages were not matched in order";
    }
    if (rank == 0) {
      std::vector<uint8_t> a(16, 1), b(16, 2);
      auto ra = t->isend(1, tag(5, 5), a.data(), 16);
      auto rb = t->isend(1, tag(5, 5), b.data(), 16);
      t->wait(ra, soon());
      t->wait(rb, soon());
    }
    t->shutdown(soon());
    return "ok";
  });
  require_all_ok(out);
}

TEST_CASE("many messages in flight both ways at once", "[transport]") {
  const std::string tls = GENERATE("sm", "tcp");
  INFO("UCX_TLS=" << tls);
  JobSpec spec;
  spec.ucx_tls = tls;
  auto out = run_job(spec, [](int rank, Options o) -> std::string {
    auto t = Transport::create(o);
    const int peer = 1 - rank;
    constexpr int kN = 64;
    auto size_of = [](int i) {
      return static_cast<size_t>(i % 4 == 0 ? 256 * 1024 : 1000 + 37 * i);
    };
    std::vector<std::vector<uint8_t>> in(kN), outb(kN);
    std::vector<Request> rs;
    for (int i = 0; i < kN; ++i) {
      in[i].resize(size_of(i));
      outb[i].resize(size_of(i));
      fill_pattern(outb[i].data(), outb[i].size(), rank * 1000 + i);
      // Send first on purpose: rendezvous sends must not deadlock when both sides do it.
      rs.push_back(t->isend(peer, tag(1, static_cast<uint16_t>(i), 0, kBackwardDir), outb[i].data(),
                            outb[i].size()));
      rs.push_back(t->irecv(peer, tag(1, static_cast<uint16_t>(i), 0, kBackwardDir), in[i].data(),
                            in[i].size()));
    }
    t->wait_all(rs, soon());
    for (int i = 0; i < kN; ++i)
      if (check_pattern(in[i].data(), in[i].size(), peer * 1000 + i) >= 0)
        return fmt::format("message {} corrupted", i);
    t->shutdown(soon());
    return "ok";
  });
  require_all_ok(out);
}

TEST_CASE("a receive posted after the send has started still completes", "[transport]") {
  const std::string tls = GENERATE("sm", "tcp");
  INFO("UCX_TLS=" << tls);
  JobSpec spec;
  spec.ucx_tls = tls;
  auto out = run_job(spec, [](int rank, Options o) -> std::string {
    auto t = Transport::create(o);
    std::vector<uint8_t> small(8), big(2u << 20);
    if (rank == 0) {
      fill_pattern(small.data(), small.size(), 1);
      fill_pattern(big.data(), big.size(), 2);
      auto a = t->isend(1, tag(3, 0), small.data(), small.size());
      auto b = t->isend(1, tag(3, 1), big.data(), big.size());
      t->barrier(soon());  // rank 1 posts its receives only after this
      std::vector<Request> rs{a, b};
      t->wait_all(rs, soon());
    } else {
      t->barrier(soon());
      auto b = t->irecv(0, tag(3, 1), big.data(), big.size());
      auto a = t->irecv(0, tag(3, 0), small.data(), small.size());
      t->wait(b, soon());
      t->wait(a, soon());
      if (check_pattern(small.data(), small.size(), 1) >= 0 ||
          check_pattern(big.data(), big.size(), 2) >= 0)
        return "late-posted receive got wrong bytes";
    }
    t->shutdown(soon());
    return "ok";
  });
  require_all_ok(out);
}

TEST_CASE("test() polls without blocking until a message arrives", "[transport]") {
  JobSpec spec;
  auto out = run_job(spec, [](int rank, Options o) -> std::string {
    auto t = Transport::create(o);
    uint64_t v = 0;
    if (rank == 1) {
      auto r = t->irecv(0, tag(9, 0), &v, sizeof v);
      bool before = t->test(r);  // rank 0 sends only after the barrier
      t->barrier(soon());
      auto deadline = soon();
      while (!t->test(r))
        if (deadline.expired()) return "test() never reported completion";
      if (before) return "test() reported completion before the message was sent";
      if (v != 42) return "wrong value";
    } else {
      t->barrier(soon());
      v = 42;
      auto r = t->isend(1, tag(9, 0), &v, sizeof v);
      t->wait(r, soon());
    }
    t->shutdown(soon());
    return "ok";
  });
  require_all_ok(out);
}

TEST_CASE("a size mismatch is an error, not silent truncation", "[transport]") {
  JobSpec spec;
  auto out = run_job(spec, [](int rank, Options o) -> std::string {
    auto t = Transport::create(o);
    t->set_tag_describer(describe_test_tag);
    std::vector<uint8_t> buf(200);
    std::string result = "ok";
    if (rank == 0) {
      auto a = t->isend(1, tag(1, 0), buf.data(), 100);
      auto b = t->isend(1, tag(1, 1), buf.data(), 100);
      t->wait(a, soon());
      t->wait(b, soon());
    } else {
      for (size_t expect : {size_t{64}, size_t{200}}) {
        auto r = t->irecv(0, tag(1, expect == 64 ? 0 : 1), buf.data(), expect);
        try {
          t->wait(r, soon());
          result = fmt::format("a {}-byte receive of a 100-byte message succeeded", expect);
        } catch (const Error& e) {
          // The error names the peer, the size and the caller's description of the tag.
          const std::string want = fmt::format(
              "receive of {} bytes from rank 0 (test message {} "
              "of step 1)",
              expect, expect == 64 ? 0 : 1);
          if (e.message().find("size mismatch") == std::string::npos ||
              e.message().find(want) == std::string::npos)
            result = e.message();
        }
      }
    }
    t->shutdown(soon());
    return result;
  });
  require_all_ok(out);
}

TEST_CASE("wait gives up at its deadline, and cancel releases a receive", "[transport]") {
  JobSpec spec;
  auto out = run_job(spec, [](int rank, Options o) -> std::string {
    auto t = Transport::create(o);
    std::string result = "ok";
    if (rank == 1) {
      uint64_t v;
      auto r = t->irecv(0, tag(77, 0), &v, sizeof v);
      auto start = now_seconds();
      try {
        t->wait(r, Deadline::after_seconds(0.2));
        result = "wait returned for a message never sent";
      } catch (const Error& e) {
        if (e.kind() != ErrorKind::kRuntime || e.message().find("deadline") == std::string::npos)
          result = "unexpected error: " + e.message();
      }
      if (now_seconds() - start > 2) result = "wait overran its deadline";
      t->cancel(r);
      if (!r.done()) result = "cancelled request not done";
    }
    t->shutdown(soon());
    return result;
  });
  require_all_ok(out);
}

TEST_CASE("all_reduce_sum gives the same bits on every rank and barrier and broadcast complete",
          "[transport]") {
  JobSpec spec;
  spec.world = 3;
  auto out = run_job(spec, [](int rank, Options o) -> std::string {
    auto t = Transport::create(o);
    // Order-sensitive values: the result depends on summation order.
    std::vector<std::vector<double>> inputs = {
        {1e16, 0.1, -0.0, 3.0}, {1.0, 0.2, -0.0, 1e-300}, {-1e16, 0.3, -0.0, -3.0}};
    auto sum = t->all_reduce_sum(inputs[rank], soon());
    std::string hex;
    for (double d : sum) {
      uint64_t bits;
      std::memcpy(&bits, &d, 8);
      hex += fmt::format("{:016x} ", bits);
    }
    t->barrier(soon());
    std::vector<uint8_t> bytes;
    if (rank == 2) bytes = {1, 2, 3, 250};
    t->broadcast(bytes, 2, soon());
    if (bytes != std::vector<uint8_t>{1, 2, 3, 250}) return std::string("broadcast wrong");
    auto empty = t->all_reduce_sum({}, soon());
    if (!empty.empty()) return std::string("empty all-reduce returned values");
    t->shutdown(soon());
    return hex;
  });
  require_all_ok(out);
  // Rank order: ((v0 + v1) + v2).
  std::string want;
  for (double d : {(1e16 + 1.0) + -1e16, (0.1 + 0.2) + 0.3, -0.0, (3.0 + 1e-300) + -3.0}) {
    uint64_t bits;
    std::memcpy(&bits, &d, 8);
    want += fmt::format("{:016x} ", bits);
  }
  for (auto& o : out) CHECK(o.text == want);
}

TEST_CASE("a barrier from a second thread runs while the first does point-to-point",
          "[transport]") {
  JobSpec spec;
  auto out = run_job(spec, [](int rank, Options o) -> std::string {
    auto t = Transport::create(o);
    std::string err;
    std::thread side([&] {
      try {
        for (int i = 0; i < 5; ++i) t->barrier(soon());
      } catch (const Error& e) {
        err = e.message();
      }
    });
    std::vector<uint8_t> a(100000), b(100000);
    for (int i = 0; i < 20; ++i) {
      std::vector<Request> rs{t->irecv(1 - rank, tag(i, 0), b.data(), b.size()),
                              t->isend(1 - rank, tag(i, 0), a.data(), a.size())};
      t->wait_all(rs, soon());
    }
    side.join();
    t->shutdown(soon());
    return err.empty() ? "ok" : err;
  });
  require_all_ok(out);
}

TEST_CASE("a ring all-reduce over UCX gives every rank the same sum bits", "[transport]") {
  const std::string tls = GENERATE("sm", "tcp");
  INFO("UCX_TLS=" << tls);
  JobSpec spec;
  spec.world = 3;
  spec.ucx_tls = tls;
  constexpr size_t kN = (1u << 20) + 5;  // 4 MiB of floats, not divisible by 3
  auto value = [](int rank, size_t i) { return 1.0f / float(1 + rank + i % 97); };
  auto out = run_job(spec, [&](int rank, Options o) {
    auto t = Transport::create(o);
    std::vector<float> data(kN), scratch;
    for (size_t i = 0; i < kN; ++i) data[i] = value(rank, i);
    const std::vector<int> group = {0, 1, 2};
    pipeline::ring_all_reduce_sum(*t, group, data, 1, scratch, soon());
    // Chunk k is summed from rank k around the ring (pipeline/parallel/ring_all_reduce.h).
    for (size_t k = 0; k < 3; ++k) {
      for (size_t i = k * kN / 3; i < (k + 1) * kN / 3; ++i) {
        float want = value(int(k), i);
        for (size_t j = 1; j < 3; ++j) want = want + value(int((k + j) % 3), i);
        if (std::memcmp(&want, &data[i], sizeof want) != 0)
          return fmt::format("element {}: {} instead of {}", i, data[i], want);
      }
    }
    t->shutdown(soon());
    return std::string("ok");
  });
  require_all_ok(out);
}
