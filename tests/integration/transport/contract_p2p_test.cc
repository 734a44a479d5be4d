// The transport contract (contract.h), point-to-point: what arrives where. Messages stay
// small (at most 300 kB, past UCX's rendezvous threshold on every transport here); UCX at
// scale is p2p_test.cc's.
#include <algorithm>
#include <array>

#include "tests/integration/transport/contract.h"

using namespace conveyor;
using namespace conveyor::transport;
using conveyor::test::contract::Bytes;
using conveyor::test::contract::require;

namespace {

// A message size past the rendezvous threshold of UCX's shared-memory and TCP transports.
constexpr size_t kLarge = 300000;

// The pattern seed of the message `from` sends on `tag`.
uint64_t seed_of(int from, Tag tag) {
  return static_cast<uint64_t>(from) * 1000003 + tag;
}

}  // namespace

TRANSPORT_CONTRACT_CASE("every rank knows its rank and the job's size", "[transport]", 3) {
  require(r.t.rank() == r.rank, fmt::format("rank() is {}, not {}", r.t.rank(), r.rank));
  require(r.t.world_size() == r.world, fmt::format("world_size() is {}", r.t.world_size()));
  // Distinct ranks: each counts itself once.
  std::vector<double> me(r.world, 0.0);
  me[r.t.rank()] = 1.0;
  require(r.t.all_reduce_sum(me, r.soon()) == std::vector<double>(r.world, 1.0),
          "two ranks share a rank number");
}

TRANSPORT_CONTRACT_CASE("messages of 0 B to 300 kB arrive byte-exact in both directions",
                        "[transport]", 2) {
  const int peer = 1 - r.rank;
  const std::array<size_t, 5> sizes = {0, 1, 4096, 65537, kLarge};
  for (size_t i = 0; i < sizes.size(); ++i) {
    const size_t n = sizes[i];
    const Tag tag = 100 + i;
    Bytes out = r.alloc(n + 1), in = r.alloc(n + 1);
    r.fill(out, 0, n, seed_of(r.rank, tag));
    r.write(in, n, {0xAB});  // a guard byte just past the message
    std::vector<Request> rs{r.t.irecv(peer, tag, in.data(), n, nullptr, r.type()),
                            r.t.isend(peer, tag, out.data(), n, nullptr, r.type())};
    r.t.wait_all(rs, r.soon());
    require(rs[0].done() && rs[1].done(), "wait_all returned with a request not done");
    const long bad = r.first_wrong(in, 0, n, seed_of(peer, tag));
    require(bad < 0, fmt::format("{} bytes: first wrong byte at {}", n, bad));
    require(r.read(in, n, 1)[0] == 0xAB, fmt::format("{} bytes: wrote past the end", n));
  }
}

TRANSPORT_CONTRACT_CASE("registered regions report their bounds and carry messages at any offset",
                        "[transport]", 2) {
  const int peer = 1 - r.rank;
  Bytes out = r.alloc(2 * kLarge), in = r.alloc(2 * kLarge);
  MemoryRegion out_mr = r.register_memory(out);
  const MemoryRegion in_mr = r.register_memory(in);
  require(in_mr.valid() && in_mr.data() == in.data() && in_mr.size() == in.bytes(),
          "the region does not report the buffer it registered");
  require(in_mr.memory_type() == r.type(), "the region misreports its memory type");
  // A small and a large message at odd offsets; the receive names its region, the send
  // leaves the transport to find it.
  const std::array<std::pair<size_t, size_t>, 2> messages = {{{13, 100}, {kLarge - 7, kLarge}}};
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto [offset, n] = messages[i];
    const Tag tag = 200 + i;
    r.fill(out, offset, n, seed_of(r.rank, tag));
    std::vector<Request> rs{r.t.irecv(peer, tag, in.data() + offset, n, &in_mr, r.type()),
                            r.t.isend(peer, tag, out.data() + offset, n, nullptr, r.type())};
    r.t.wait_all(rs, r.soon());
    const long bad = r.first_wrong(in, offset, n, seed_of(peer, tag));
    require(bad < 0, fmt::format("{} bytes at offset {}: first wrong byte at {}", n, offset, bad));
  }
  require(r.read(in, 0, 13) == std::vector<uint8_t>(13, 0), "wrote before the message");
  // Regions are move-only handles; the moved-from one is empty.
  MemoryRegion moved = std::move(out_mr);
  require(moved.valid() && !out_mr.valid() && moved.data() == out.data(),
          "moving a region lost it");
}

TRANSPORT_CONTRACT_CASE("a receive takes only the message of its peer and tag, in any order",
                        "[transport]", 3) {
  // Ranks 1 and 2 send rank 0 one message on each tag, the same size from both, so a
  // receive matched to the wrong peer or tag would get the wrong bytes, not a size error.
  const std::array<Tag, 4> tags = {0, 1, 0x123456789A, kMaxTag};
  auto size_of = [](size_t i) { return i == 1 ? kLarge : 64 + i; };
  if (r.rank != 0) {
    std::vector<Bytes> out;
    std::vector<Request> rs;
    for (size_t i = 0; i < tags.size(); ++i) {
      out.push_back(r.alloc(size_of(i)));
      r.fill(out.back(), 0, size_of(i), seed_of(r.rank, tags[i]));
      rs.push_back(r.t.isend(0, tags[i], out.back().data(), size_of(i), nullptr, r.type()));
    }
    r.t.wait_all(rs, r.soon());
    return;
  }
  // (peer, tag index) pairs, posted in an order unlike the sends', waited for in another.
  std::vector<std::pair<int, size_t>> posts;
  for (size_t i = tags.size(); i-- > 0;)
    for (int peer : {2, 1}) posts.emplace_back(peer, i);
  std::rotate(posts.begin(), posts.begin() + 3, posts.end());
  std::vector<Bytes> in;
  std::vector<Request> rs;
  for (const auto& [peer, i] : posts) {
    in.push_back(r.alloc(size_of(i)));
    rs.push_back(r.t.irecv(peer, tags[i], in.back().data(), size_of(i), nullptr, r.type()));
  }
  for (size_t k = posts.size(); k-- > 0;) {
    const auto [peer, i] = posts[k];
    r.t.wait(rs[k], r.soon());
    require(
        r.first_wrong(in[k], 0, size_of(i), seed_of(peer, tags[i])) < 0,
        fmt::format("the receive from rank {} on tag {:#x} got another message", peer, tags[i]));
  }
}

TRANSPORT_CONTRACT_CASE("messages between the same pair with the same tag match in posting order",
                        "[transport]", 2) {
  // Round 1: the receives are posted before the sends; round 2 (large messages): after
  // them, once the sends have started. Either way the k-th receive gets the k-th message,
  // whatever order they are waited for in.
  constexpr int kMessages = 3;
  struct Round {
    Tag tag;
    size_t bytes;
  };
  for (const Round round_spec : {Round{1, 16}, Round{2, kLarge}}) {
    const Tag round = round_spec.tag;
    const size_t n = round_spec.bytes;
    std::vector<Bytes> bufs;
    std::vector<Request> rs;
    const bool receives_first = round == 1;
    auto post = [&] {
      for (int k = 0; k < kMessages; ++k) {
        bufs.push_back(r.alloc(n));
        if (r.rank == 0) {
          r.fill(bufs.back(), 0, n, seed_of(k, round));
          rs.push_back(r.t.isend(1, round, bufs.back().data(), n, nullptr, r.type()));
        } else {
          rs.push_back(r.t.irecv(0, round, bufs.back().data(), n, nullptr, r.type()));
        }
      }
    };
    const bool posts_first = (r.rank == 1) == receives_first;
    if (posts_first) post();
    r.t.barrier(r.soon());
    if (!posts_first) post();
    for (int k = kMessages; k-- > 0;) r.t.wait(rs[k], r.soon());
    if (r.rank == 1) {
      for (int k = 0; k < kMessages; ++k)
        require(r.first_wrong(bufs[k], 0, n, seed_of(k, round)) < 0,
                fmt::format("round {}: receive {} did not get message {}", round, k, k));
    }
  }
}

TRANSPORT_CONTRACT_CASE("sends posted before receives on both ranks complete under one wait_all",
                        "[transport]", 2) {
  const int peer = 1 - r.rank;
  constexpr int kMessages = 24;
  auto size_of = [](int i) { return i % 4 == 0 ? kLarge : static_cast<size_t>(1000 + 37 * i); };
  std::vector<Bytes> in, out;
  std::vector<Request> rs;
  for (int i = 0; i < kMessages; ++i) {
    in.push_back(r.alloc(size_of(i)));
    out.push_back(r.alloc(size_of(i)));
    r.fill(out.back(), 0, size_of(i), seed_of(r.rank, i));
    // Send first on purpose: large sends must not deadlock when both ranks do it.
    rs.push_back(r.t.isend(peer, i, out.back().data(), size_of(i), nullptr, r.type()));
    rs.push_back(r.t.irecv(peer, i, in.back().data(), size_of(i), nullptr, r.type()));
  }
  r.t.wait_all(rs, r.soon());
  for (int i = 0; i < kMessages; ++i)
    require(r.first_wrong(in[i], 0, size_of(i), seed_of(peer, i)) < 0,
            fmt::format("message {} arrived wrong", i));
}

TRANSPORT_CONTRACT_CASE(
    "test() reports a receive pending until its message is sent, never blocking", "[transport]",
    2) {
  Bytes buf = r.alloc(8);
  if (r.rank == 1) {
    Request q = r.t.irecv(0, 9, buf.data(), 8, nullptr, r.type());
    // Rank 0 sends only after the barrier, which this rank has not reached: test() must
    // return (false) rather than wait for the message.
    require(!r.t.test(q), "test() reported a message that was not sent yet");
    require(!q.done(), "done() reported a message that was not sent yet");
    r.t.barrier(r.soon());
    const Deadline deadline = r.soon();
    while (!r.t.test(q)) require(!deadline.expired(), "test() never reported the message");
    require(q.done(), "done() is false after test() reported completion");
    require(r.read(buf, 0, 8) == std::vector<uint8_t>{4, 2, 4, 2, 4, 2, 4, 2}, "wrong bytes");
  } else {
    r.t.barrier(r.soon());
    r.write(buf, 0, {4, 2, 4, 2, 4, 2, 4, 2});
    Request s = r.t.isend(1, 9, buf.data(), 8, nullptr, r.type());
    r.t.wait(s, r.soon());
  }
}
