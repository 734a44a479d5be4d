// The transport contract suite: what transport/transport.h promises, written once against
// transport::Transport and run over every transport conveyor has. Each case
//
//   TRANSPORT_CONTRACT_CASE("test() never blocks ...", "[transport]", 2) {
//     auto in = r.alloc(8);  // `r` is this rank: r.t (its Transport&), r.rank, r.world
//     auto req = r.t.irecv(1 - r.rank, 7, in.data(), 8);
//     require(!r.t.test(req), "test() saw a message nobody sent");
//     ...
//   }
//
// runs on every rank of a job of that many ranks, and is registered once per transport
// (the way tests/unit/kernels registers a case once per backend), named "<name> on <kind>"
// and tagged [<kind>]:
//
//   ucx-sm   UcxTransport, one process per rank, UCX_TLS=sm,self (shared memory: sysv/posix
//            segments and cma)
//   ucx-tcp  UcxTransport, one process per rank, UCX_TLS=tcp,self (loopback)
//   staging  StagingTransport (transport/staging_transport.h) around a UcxTransport over
//            shared memory, every buffer of the case in FakeDeviceBackend memory (memory the
//            host cannot touch outside the backend's copies), so every message is staged
//   fake     FakeTransport (tests/fakes/fake_transport.h), one thread per rank
//
// A body checks with require() / require_error(), which throw: a rank whose body throws
// fails the case with its message (and, as a failing process would, fails the other ranks'
// calls). Every body's buffers come from r.alloc() and are read and written through r (never
// directly: staging memory is not host memory) and registered through r.register_memory(),
// the one call of Transport::register_memory in the suite. After the body returns the rank
// calls shutdown(), unless the body ended the job with r.end_without_shutdown().
//
// Every rank must return "ok"; ctest reports a failed case with every rank's outcome.
#pragma once

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <source_location>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "kernels/backend.h"
#include "transport/transport.h"

namespace conveyor::test::contract {

enum class Kind { kUcxSm, kUcxTcp, kStaging, kFake };
inline constexpr Kind kKinds[] = {Kind::kUcxSm, Kind::kUcxTcp, Kind::kStaging, Kind::kFake};
const char* kind_name(Kind kind);  // "ucx-sm", "ucx-tcp", "staging", "fake"

using Bytes = kernels::Buffer<uint8_t>;

// One rank of a case: its transport and the memory its messages live in.
class Rank {
 public:
  Rank(transport::Transport& transport, int rank, int world, kernels::Backend& memory)
      : t(transport), rank(rank), world(world), memory_(memory) {}

  transport::Transport& t;
  const int rank;   // the rank the harness started (t.rank() must say the same)
  const int world;  // the job's size

  // `n` zero bytes in the case's memory (host memory, or device memory for staging).
  Bytes alloc(size_t n);
  // Registers all of `b` (the one call of Transport::register_memory in the suite).
  transport::MemoryRegion register_memory(Bytes& b);
  // Whether alloc() hands out device memory (registered regions then say kDevice).
  bool device_memory() const { return memory_.memory_type() == kernels::MemoryType::kDevice; }
  // The type of what alloc() hands out: every isend and irecv of a case says it (transport.h).
  transport::MemoryType type() const { return memory_.memory_type(); }

  // The bytes [offset, offset + n) of b: the pattern keyed by `seed`, or as read.
  void fill(Bytes& b, size_t offset, size_t n, uint64_t seed);
  // The first offset in [offset, offset + n) that does not hold seed's pattern, or -1.
  long first_wrong(const Bytes& b, size_t offset, size_t n, uint64_t seed);
  std::vector<uint8_t> read(const Bytes& b, size_t offset, size_t n);
  void write(Bytes& b, size_t offset, const std::vector<uint8_t>& bytes);

  // The deadline of every wait that should succeed: generous, so only a hang hits it.
  static Deadline soon() { return Deadline::after_seconds(20); }
  // The body ended the job as a failure (abort, a dead peer): no shutdown() after it.
  void end_without_shutdown() { shutdown_ = false; }
  bool wants_shutdown() const { return shutdown_; }

 private:
  kernels::Backend& memory_;
  bool shutdown_ = true;
};

// What a rank's body throws when a check fails.
class Failure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws Failure("file:line: what") unless ok.
void require(bool ok, const std::string& what,
             std::source_location where = std::source_location::current());

// Runs f(), which must throw conveyor::Error of `kind`; returns that Error.
template <class F>
Error require_error(ErrorKind kind, F&& f, const std::string& what,
                    std::source_location where = std::source_location::current()) {
  try {
    f();
  } catch (const Error& e) {
    require(e.kind() == kind, what + ": threw an error of another kind: " + e.message(), where);
    return e;
  }
  require(false, what + ": did not throw", where);
  return Error(kind, "");  // not reached
}

// Whether `text` contains `part`, else a message showing both (for require).
bool contains(const std::string& text, const std::string& part);

namespace detail {

using Body = void (*)(Rank& r);

// Runs `body` on `world` ranks of `kind` and checks (Catch2) that every rank returned.
void run_case(Kind kind, int world, Body body);

class ContractCase final : public Catch::ITestInvoker {
 public:
  ContractCase(Body body, Kind kind, int world) : body_(body), kind_(kind), world_(world) {}
  void invoke() const override { run_case(kind_, world_, body_); }

 private:
  Body body_;
  Kind kind_;
  int world_;
};

struct Registrar {
  Registrar(Body body, const char* name, const char* tags, int world, const char* file,
            size_t line);
};

}  // namespace detail

}  // namespace conveyor::test::contract

#define CONVEYOR_TC_CAT2(a, b) a##b
#define CONVEYOR_TC_CAT(a, b) CONVEYOR_TC_CAT2(a, b)

#define CONVEYOR_TC_CASE(body, name, tags, world)                                               \
  static void body(::conveyor::test::contract::Rank& r);                                        \
  static const ::conveyor::test::contract::detail::Registrar CONVEYOR_TC_CAT(body, _registrar)( \
      &body, name, tags, world, __FILE__, __LINE__);                                            \
  static void body([[maybe_unused]] ::conveyor::test::contract::Rank& r)

// A contract case: `world` ranks run the body, once per transport (see the top of the file).
#define TRANSPORT_CONTRACT_CASE(name, tags, world) \
  CONVEYOR_TC_CASE(CONVEYOR_TC_CAT(conveyor_tc_case_, __LINE__), name, tags, world)
