// The transport contract (contract.h): the collectives, calls from several threads, and a
// rank that aborts.
#include <unistd.h>

#include <cstring>
#include <thread>

#include "common/net.h"
#include "tests/integration/transport/contract.h"

using namespace conveyor;
using namespace conveyor::transport;
using conveyor::test::contract::Bytes;
using conveyor::test::contract::contains;
using conveyor::test::contract::require;
using conveyor::test::contract::require_error;

namespace {

bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
}

}  // namespace

TRANSPORT_CONTRACT_CASE("all_reduce_sum adds in rank order, the same bits on every rank",
                        "[transport]", 3) {
  // Values whose sum depends on the order of the additions.
  const std::vector<std::vector<double>> inputs = {
      {1e16, 0.1, -0.0, 3.0}, {1.0, 0.2, -0.0, 1e-300}, {-1e16, 0.3, -0.0, -3.0}};
  std::vector<double> want = inputs[0];
  for (size_t i = 0; i < want.size(); ++i) want[i] = (want[i] + inputs[1][i]) + inputs[2][i];
  const auto sum = r.t.all_reduce_sum(inputs[r.rank], r.soon());
  require(same_bits(sum, want), "the sum is not ((v0 + v1) + v2) bit for bit");
  require(r.t.all_reduce_sum({}, r.soon()).empty(), "an empty all-reduce returned values");
}

TRANSPORT_CONTRACT_CASE("broadcast gives every rank the root's bytes, whatever it held before",
                        "[transport]", 3) {
  std::vector<uint8_t> bytes(r.rank * 5, 7);  // of another size on every rank
  if (r.rank == 2) bytes = {1, 2, 3, 250};
  r.t.broadcast(bytes, 2, r.soon());
  require(bytes == std::vector<uint8_t>{1, 2, 3, 250}, "broadcast from rank 2 arrived wrong");
  bytes = r.rank == 0 ? std::vector<uint8_t>{} : std::vector<uint8_t>(9, 9);
  r.t.broadcast(bytes, 0, r.soon());
  require(bytes.empty(), "an empty broadcast from rank 0 left bytes behind");
  std::vector<uint8_t> big(4000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 31);
  bytes = r.rank == 1 ? big : std::vector<uint8_t>{};
  r.t.broadcast(bytes, 1, r.soon());
  require(bytes == big, "a 4000-byte broadcast from rank 1 arrived wrong");
}

TRANSPORT_CONTRACT_CASE("a barrier on a second thread runs while the first does point-to-point",
                        "[transport]", 2) {
  std::string side_error;
  std::thread side([&] {
    try {
      for (int i = 0; i < 5; ++i) r.t.barrier(r.soon());
    } catch (const std::exception& e) {
      side_error = e.what();
    }
  });
  const int peer = 1 - r.rank;
  Bytes out = r.alloc(100000), in = r.alloc(100000);
  for (Tag i = 0; i < 10; ++i) {
    std::vector<Request> rs{r.t.irecv(peer, i, in.data(), in.size(), nullptr, r.type()),
                            r.t.isend(peer, i, out.data(), out.size(), nullptr, r.type())};
    r.t.wait_all(rs, r.soon());
  }
  side.join();
  require(side_error.empty(), "the barriers failed: " + side_error);
}

TRANSPORT_CONTRACT_CASE("a wait on one thread does not hold up another thread's messages",
                        "[transport]", 2) {
  // Rank 0 waits for rank 1's reply on a second thread while its first thread sends the
  // message rank 1 replies to: the waiting thread must not keep the transport to itself.
  Bytes ping = r.alloc(64), pong = r.alloc(64);
  if (r.rank == 1) {
    Request q = r.t.irecv(0, 1, ping.data(), 64, nullptr, r.type());
    r.t.wait(q, r.soon());
    Request s = r.t.isend(0, 2, ping.data(), 64, nullptr, r.type());
    r.t.wait(s, r.soon());
    return;
  }
  r.fill(ping, 0, 64, 11);
  Request reply = r.t.irecv(1, 2, pong.data(), 64, nullptr, r.type());
  std::string waiter_error;
  std::thread waiter([&] {
    try {
      r.t.wait(reply, r.soon());
    } catch (const std::exception& e) {
      waiter_error = e.what();
    }
  });
  Request s = r.t.isend(1, 1, ping.data(), 64, nullptr, r.type());
  r.t.wait(s, r.soon());
  waiter.join();
  require(waiter_error.empty(), "the waiting thread failed: " + waiter_error);
  require(r.first_wrong(pong, 0, 64, 11) < 0, "the reply arrived wrong");
}

TRANSPORT_CONTRACT_CASE(
    "after abort() the other ranks fail as a peer failure naming the rank and why", "[transport]",
    3) {
  r.end_without_shutdown();  // the job fails
  if (r.rank == 1) {
    r.t.abort("disk full while writing the checkpoint");
    return;
  }
  Bytes buf = r.alloc(8);
  // A receive from the aborted rank (never sent) fails as it is posted or while waited for,
  // depending on when this rank hears of the abort.
  const Error e = require_error(
      ErrorKind::kPeerFailed,
      [&] {
        Request q = r.t.irecv(1, 5, buf.data(), 8, nullptr, r.type());
        r.t.wait(q, r.soon());
      },
      "a receive from the aborted rank");
  require(contains(e.message(), fmt::format("rank 1 (host {}, pid ", host_name())), e.message());
  require(contains(e.message(), ") aborted: disk full while writing the checkpoint"), e.message());
  // From then on every call fails the same way.
  require_error(
      ErrorKind::kPeerFailed, [&] { r.t.barrier(r.soon()); }, "a barrier after it");
}
