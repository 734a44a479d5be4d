#include "tests/integration/transport/contract.h"

#include <exception>
#include <filesystem>
#include <memory>
#include <thread>

#include "kernels/cpu/cpu_backend.h"
#include "pipeline/runtime/device_transport.h"
#include "tests/fakes/fake_device_backend.h"
#include "tests/fakes/fake_transport.h"
#include "tests/integration/transport/multi_rank.h"
#include "transport/staging_transport.h"

namespace conveyor::test::contract {

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::kUcxSm:
      return "ucx-sm";
    case Kind::kUcxTcp:
      return "ucx-tcp";
    case Kind::kStaging:
      return "staging";
    case Kind::kFake:
      return "fake";
  }
  return "?";
}

Bytes Rank::alloc(size_t n) {
  return memory_.alloc<uint8_t>(n);
}

transport::MemoryRegion Rank::register_memory(Bytes& b) {
  return t.register_memory(b.data(), b.bytes(), type());
}

void Rank::fill(Bytes& b, size_t offset, size_t n, uint64_t seed) {
  require(offset + n <= b.size(), "fill: outside the buffer");
  std::vector<uint8_t> host(n);
  fill_pattern(host.data(), n, seed);
  write(b, offset, host);
}

long Rank::first_wrong(const Bytes& b, size_t offset, size_t n, uint64_t seed) {
  const std::vector<uint8_t> host = read(b, offset, n);
  return check_pattern(host.data(), n, seed);
}

std::vector<uint8_t> Rank::read(const Bytes& b, size_t offset, size_t n) {
  require(offset + n <= b.size(), "read: outside the buffer");
  std::vector<uint8_t> host(n);
  if (n > 0) memory_.to_host(host.data(), b.data() + offset, n);
  return host;
}

void Rank::write(Bytes& b, size_t offset, const std::vector<uint8_t>& bytes) {
  require(offset + bytes.size() <= b.size(), "write: outside the buffer");
  if (!bytes.empty()) memory_.from_host(b.data() + offset, bytes.data(), bytes.size());
}

void require(bool ok, const std::string& what, std::source_location where) {
  if (!ok)
    throw Failure(std::filesystem::path(where.file_name()).filename().string() + ":" +
                  std::to_string(where.line()) + ": " + what);
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

namespace detail {

namespace {

// A rank's part of a case once its transport exists: the body, then a clean end.
void run_rank(transport::Transport& t, int rank, int world, kernels::Backend& memory, Body body) {
  Rank r(t, rank, world, memory);
  body(r);
  if (r.wants_shutdown()) t.shutdown(Rank::soon());
}

// One process per rank (multi_rank.h), each with its own UcxTransport; with staging, that
// transport is wrapped and the rank's memory is fake device memory.
std::vector<RankOutcome> run_ucx(Kind kind, int world, Body body) {
  JobSpec spec;
  spec.world = world;
  spec.ucx_tls = kind == Kind::kUcxTcp ? "tcp,self" : "sm,self";
  return run_job(spec, [&](int rank, transport::Options options) {
    std::unique_ptr<kernels::Backend> memory;  // outlives the transport, which copies with it
    std::unique_ptr<transport::Transport> t = transport::Transport::create(options);
    if (kind == Kind::kStaging) {
      auto device = std::make_unique<FakeDeviceBackend>();
      auto* d = device.get();
      t = std::make_unique<transport::StagingTransport>(std::move(t),
                                                        pipeline::staging_options(*d));
      memory = std::move(device);
    } else {
      memory = std::make_unique<kernels::CpuBackend>(1);
    }
    run_rank(*t, rank, world, *memory, body);
    return std::string("ok");
  });
}

// One thread per rank over one FakeFabric. A rank whose body throws is killed in the
// fabric, so the others fail at once as they would when a process dies.
std::vector<RankOutcome> run_fake(int world, Body body) {
  FakeFabric fabric(world);
  std::vector<RankOutcome> out(world);
  std::vector<std::thread> ranks;
  for (int rank = 0; rank < world; ++rank) {
    ranks.emplace_back([&, rank] {
      RankOutcome& o = out[rank];
      try {
        kernels::CpuBackend memory(1);
        FakeTransport t(fabric, rank);
        run_rank(t, rank, world, memory, body);
        o.exit_code = 0;
        o.text = "ok";
      } catch (const Error& e) {
        o.exit_code = e.exit_code();
        o.text = describe(e);
      } catch (const std::exception& e) {
        o.exit_code = 4;
        o.text = e.what();
      }
      if (o.exit_code != 0) fabric.kill(rank);
    });
  }
  for (auto& t : ranks) t.join();
  return out;
}

}  // namespace

void run_case(Kind kind, int world, Body body) {
  const auto out = kind == Kind::kFake ? run_fake(world, body) : run_ucx(kind, world, body);
  std::string outcomes;
  for (size_t r = 0; r < out.size(); ++r)
    outcomes += "rank " + std::to_string(r) + ": " + out[r].text + "\n";
  INFO(outcomes);
  for (const RankOutcome& o : out) CHECK((o.exit_code == 0 && o.text == "ok"));
}

Registrar::Registrar(Body body, const char* name, const char* tags, int world, const char* file,
                     size_t line) {
  for (Kind kind : kKinds) {
    const std::string full = std::string(name) + " on " + kind_name(kind);
    const std::string all_tags = std::string(tags) + "[" + kind_name(kind) + "]";
    const Catch::AutoReg registered(
        new ContractCase(body, kind, world), Catch::SourceLineInfo(file, line), Catch::StringRef(),
        Catch::NameAndTags(Catch::StringRef(full), Catch::StringRef(all_tags)));
  }
}

}  // namespace detail

}  // namespace conveyor::test::contract
