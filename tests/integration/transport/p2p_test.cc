// UCX at scale, for every UCX transport we run on one host: shared memory ("sm": sysv/posix
// + cma) and TCP loopback. What every transport promises (matching, errors, cancel, the
// collectives) is the contract suite's (contract.h), with small messages; here are the
// messages of many megabytes, which UCX moves with its rendezvous protocol in fragments, and
// the ring all-reduce of data parallelism on top of them.
#include <catch2/catch.hpp>

#include <cstring>

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
Tag tag(uint32_t step, uint16_t mb) {
  return (Tag{mb} << 20) | (step & 0xFFFFF);
}

}  // namespace

TEST_CASE("messages of 1 MiB and 64 MiB arrive byte-exact in both directions", "[transport]") {
  const std::string tls = GENERATE("sm", "tcp");
  INFO("UCX_TLS=" << tls);
  JobSpec spec;
  spec.ucx_tls = tls;
  auto out = run_job(spec, [](int rank, Options o) {
    auto t = Transport::create(o);
    const int peer = 1 - rank;
    const std::vector<size_t> sizes = {1u << 20, 64u << 20};
    std::vector<uint8_t> send_buf(64u << 20), recv_buf((64u << 20) + 1);
    // Registered (the memh path); the receive names its region, the send is looked up.
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
