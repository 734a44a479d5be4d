// The transport contract (contract.h), when a message does not go as planned: a size
// mismatch, a deadline, a cancel, a tag too wide.
#include "tests/integration/transport/contract.h"

using namespace conveyor;
using namespace conveyor::transport;
using conveyor::test::contract::Bytes;
using conveyor::test::contract::contains;
using conveyor::test::contract::require;
using conveyor::test::contract::require_error;

namespace {

std::string describe_test_tag(Tag t) {
  return fmt::format("test message {}", t);
}

}  // namespace

TRANSPORT_CONTRACT_CASE(
    "a size mismatch completes the receive with an error naming peer, size and tag", "[transport]",
    2) {
  r.t.set_tag_describer(describe_test_tag);
  Bytes buf = r.alloc(200);
  if (r.rank == 0) {
    std::vector<Request> rs{r.t.isend(1, 1, buf.data(), 100, nullptr, r.type()),
                            r.t.isend(1, 2, buf.data(), 100, nullptr, r.type())};
    r.t.wait_all(rs, r.soon());  // the sender is not told
    return;
  }
  // Shorter than the message, found by wait(); longer, found by test().
  Request shorter = r.t.irecv(0, 1, buf.data(), 64, nullptr, r.type());
  const Error e1 = require_error(
      ErrorKind::kRuntime, [&] { r.t.wait(shorter, r.soon()); }, "a short receive");
  require(shorter.done(), "the failed receive is not done");
  Request longer = r.t.irecv(0, 2, buf.data(), 200, nullptr, r.type());
  const Error e2 = require_error(
      ErrorKind::kRuntime,
      [&] {
        const Deadline deadline = r.soon();
        while (!r.t.test(longer)) require(!deadline.expired(), "the long receive never ended");
      },
      "a long receive");
  require(longer.done(), "the failed receive is not done");
  for (const auto& [e, n, tag] : {std::tuple{e1, 64, 1}, std::tuple{e2, 200, 2}}) {
    require(contains(e.message(), "size mismatch"), e.message());
    require(contains(e.message(),
                     fmt::format("receive of {} bytes from rank 0 (test message {})", n, tag)),
            e.message());
  }
}

TRANSPORT_CONTRACT_CASE("wait and wait_all give up at their deadline with a runtime error",
                        "[transport]", 2) {
  if (r.rank == 0) return;  // sends nothing
  Bytes buf = r.alloc(8);
  Request q = r.t.irecv(0, 0x4d2, buf.data(), 8, nullptr, r.type());
  // Without a tag describer, errors show the tag in hex.
  const std::string what = "receive of 8 bytes from rank 0 (tag 0x4d2)";
  const Error e1 = require_error(
      ErrorKind::kRuntime, [&] { r.t.wait(q, Deadline::after_seconds(0.2)); }, "wait");
  require(contains(e1.message(), what) && contains(e1.message(), "deadline"), e1.message());
  std::vector<Request> rs{q};
  const Error e2 = require_error(
      ErrorKind::kRuntime, [&] { r.t.wait_all(rs, Deadline::after_seconds(0.2)); }, "wait_all");
  require(contains(e2.message(), what) && contains(e2.message(), "deadline"), e2.message());
  require(!q.done(), "the receive completed without a message");
  r.t.cancel(q);
}

TRANSPORT_CONTRACT_CASE(
    "cancel releases a pending receive: its buffer stays, the message goes on, "
    "and waiting on it says it was cancelled",
    "[transport]", 2) {
  Bytes first = r.alloc(16), second = r.alloc(16);
  if (r.rank == 1) {
    r.write(first, 0, std::vector<uint8_t>(16, 0x5A));
    Request cancelled = r.t.irecv(0, 3, first.data(), 16, nullptr, r.type());
    r.t.cancel(cancelled);
    require(cancelled.done(), "a cancelled receive is not done");
    const Error e = require_error(
        ErrorKind::kRuntime, [&] { r.t.wait(cancelled, r.soon()); }, "wait on a cancelled receive");
    require(contains(e.message(), "was cancelled"), e.message());
    require_error(
        ErrorKind::kRuntime, [&] { r.t.test(cancelled); }, "test of a cancelled receive");
    r.t.barrier(r.soon());  // rank 0 sends only now
    Request q = r.t.irecv(0, 3, second.data(), 16, nullptr, r.type());
    r.t.wait(q, r.soon());
    require(r.first_wrong(second, 0, 16, 3) < 0, "the next receive did not get the message");
    r.t.cancel(q);  // completed: nothing changes, and waiting on it again returns
    r.t.wait(q, r.soon());
    require(r.first_wrong(second, 0, 16, 3) < 0, "cancel of a completed receive changed it");
    require(r.read(first, 0, 16) == std::vector<uint8_t>(16, 0x5A),
            "the cancelled receive's buffer changed");
  } else {
    r.t.barrier(r.soon());
    r.fill(first, 0, 16, 3);
    Request s = r.t.isend(1, 3, first.data(), 16, nullptr, r.type());
    r.t.wait(s, r.soon());
  }
}

TRANSPORT_CONTRACT_CASE("cancel does not withdraw a send: the message still arrives", "[transport]",
                        2) {
  Bytes buf = r.alloc(32);
  if (r.rank == 1) {
    Request q = r.t.irecv(0, 4, buf.data(), 32, nullptr, r.type());
    r.t.barrier(r.soon());  // the receive is posted before rank 0 sends
    r.t.wait(q, r.soon());
    require(r.first_wrong(buf, 0, 32, 4) < 0, "the message of a cancelled send is wrong");
  } else {
    r.t.barrier(r.soon());
    r.fill(buf, 0, 32, 4);
    Request s = r.t.isend(1, 4, buf.data(), 32, nullptr, r.type());
    r.t.cancel(s);  // returns once the transport has let go of the buffer
    require(s.done(), "cancel returned while the send still used its buffer");
  }
}

TRANSPORT_CONTRACT_CASE("a tag above kMaxTag is refused with a runtime error", "[transport]", 2) {
  Bytes buf = r.alloc(8);
  const int peer = 1 - r.rank;
  require_error(
      ErrorKind::kRuntime, [&] { r.t.isend(peer, kMaxTag + 1, buf.data(), 8, nullptr, r.type()); },
      "isend with a 49-bit tag");
  require_error(
      ErrorKind::kRuntime, [&] { r.t.irecv(peer, Tag{1} << 63, buf.data(), 8, nullptr, r.type()); },
      "irecv with a 64-bit tag");
  // Nothing was posted: the same tag's widest legal neighbour still gets through.
  r.fill(buf, 0, 8, r.rank);
  Bytes in = r.alloc(8);
  std::vector<Request> rs{r.t.irecv(peer, kMaxTag, in.data(), 8, nullptr, r.type()),
                          r.t.isend(peer, kMaxTag, buf.data(), 8, nullptr, r.type())};
  r.t.wait_all(rs, r.soon());
  require(r.first_wrong(in, 0, 8, peer) < 0, "the message on kMaxTag arrived wrong");
}
