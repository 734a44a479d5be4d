// `conveyor bench transport`: ping-pong latency and streaming bandwidth between two ranks,
// through conveyor's Transport API (so the figures include everything the pipeline pays).
//
// Without WORLD_SIZE in the environment it forks a second rank on this host (before any
// UCX object exists: UCX does not survive fork). With RANK/WORLD_SIZE=2/MASTER_* set it
// runs as one of two ranks started by someone else (e.g. on two hosts).
// Rank 0 prints one JSON object per size on stdout:
//   {"bytes", "bandwidth_MBps", "latency_us", "lat_iters", "bw_iters"}
// bandwidth_MBps counts MB as 2^20 bytes, like ucx_perftest; latency is half a round trip.
#include "bench/bench_transport.h"

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <random>
#include <vector>

#include <fmt/format.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/host_buffer.h"
#include "common/launch_env.h"
#include "common/net.h"
#include "transport/transport.h"

namespace conveyor::cli {
namespace {

using transport::Request;
using transport::Tag;
using transport::Transport;

struct BenchOptions {
  size_t min_bytes = 8;
  size_t max_bytes = 64u << 20;
  double factor = 2;
  int window = 32;                // sends in flight during the bandwidth test
  double seconds_per_size = 0.3;  // rough time budget per size and test
  bool pin = false;               // rank r runs on CPU r (mod the CPU count)
};

// Pins the calling process (and the threads it starts later) to one CPU, so both ranks
// measure with the same placement every run: left to the scheduler, a forked child starts
// on its parent's CPU and the two may share a core for a while.
void pin_to_cpu(int rank) {
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(static_cast<int>(rank % std::max(1L, cpus)), &set);
  CONVEYOR_CHECK(sched_setaffinity(0, sizeof set, &set) == 0,
                 "bench transport: cannot pin rank {} to a CPU", rank);
}

// The benchmark's own tags: (size index, message index), opaque to the transport.
Tag tag(uint32_t step, uint16_t mb) {
  return (Tag{step & 0xFFFFFFu} << 16) | mb;
}

// Iteration counts: enough to fill the time budget, estimated from a short trial.
int iterations_for(double seconds_per_iter, double budget, int lo, int hi) {
  if (seconds_per_iter <= 0) return hi;
  return static_cast<int>(std::clamp(budget / seconds_per_iter, double(lo), double(hi)));
}

// Both ranks run this; only rank 0 prints.
void run_rank(Transport& t, const BenchOptions& o) {
  const int me = t.rank(), peer = 1 - me;
  // Allocated as the pipeline allocates its activation slots (huge pages when large).
  HostBuffer<uint8_t> send_buf(o.max_bytes), recv_buf(o.max_bytes);
  std::fill(send_buf.data(), send_buf.data() + send_buf.size(), static_cast<uint8_t>(me + 1));
  auto send_mr = t.register_memory(send_buf.data(), send_buf.size(), transport::MemoryType::kHost);
  auto recv_mr = t.register_memory(recv_buf.data(), recv_buf.size(), transport::MemoryType::kHost);
  const auto deadline = [] { return Deadline::after_seconds(60); };
  uint32_t step = 0;

  auto ping_pong = [&](size_t n, int iters) {
    for (int i = 0; i < iters; ++i, ++step) {
      if (me == 0) {
        // Send first, as ucx_perftest's tag_lat does: the receive is posted while the
        // message travels, not before it leaves.
        Request rs[2] = {t.isend(peer, tag(step, 0), send_buf.data(), n, &send_mr),
                         t.irecv(peer, tag(step, 1), recv_buf.data(), n, &recv_mr)};
        t.wait_all(rs, deadline());
      } else {
        auto r = t.irecv(peer, tag(step, 0), recv_buf.data(), n, &recv_mr);
        t.wait(r, deadline());
        auto s = t.isend(peer, tag(step, 1), send_buf.data(), n, &send_mr);
        t.wait(s, deadline());
      }
    }
  };
  // Rank 0 streams `iters` messages with `window` always in flight (a sliding window, as
  // ucx_perftest's tag_bw keeps its pipeline full); rank 1 acknowledges the end.
  auto stream = [&](size_t n, int iters) {
    const int w = std::min(o.window, iters);
    std::vector<Request> rs(w);
    auto post = [&](int i) {
      // Message i carries tag (step + i / 65536, i % 65536): unique while in flight.
      Tag tg = tag(step + static_cast<uint32_t>(i / 65536), static_cast<uint16_t>(i % 65536));
      rs[i % w] = me == 0 ? t.isend(peer, tg, send_buf.data(), n, &send_mr)
                          : t.irecv(peer, tg, recv_buf.data(), n, &recv_mr);
    };
    for (int i = 0; i < w; ++i) post(i);
    for (int i = 0; i < iters; ++i) {
      t.wait(rs[i % w], deadline());
      if (i + w < iters) post(i + w);
    }
    step += static_cast<uint32_t>(iters / 65536 + 1);
    uint8_t ack = 0;
    auto r = me == 0 ? t.irecv(peer, tag(step, 0), &ack, 1) : t.isend(peer, tag(step, 0), &ack, 1);
    t.wait(r, deadline());
    ++step;
  };
  // Rank 0 decides iteration counts and shares them, so both ranks agree.
  auto agree = [&](int iters) {
    std::vector<double> v{me == 0 ? double(iters) : 0.0};
    return static_cast<int>(t.all_reduce_sum(v, deadline())[0]);
  };

  // Warm-up: connections, registration caches and page faults before the first row; about
  // 64 MiB of traffic (1000 messages of a small first size, 2 of a large one).
  const int warm_iters = static_cast<int>(std::clamp<size_t>((64u << 20) / o.min_bytes, 2, 1000));
  ping_pong(o.min_bytes, warm_iters);
  stream(o.min_bytes, warm_iters);

  for (double size = double(o.min_bytes); size <= double(o.max_bytes) * 1.0000001;
       size *= o.factor) {
    size_t n = static_cast<size_t>(size);
    // Latency: a short trial (also the warm-up), then the measured run.
    auto t0 = now_seconds();
    ping_pong(n, 16);
    int lat_iters = agree(iterations_for((now_seconds() - t0) / 16, o.seconds_per_size,
                                         n <= 65536 ? 2000 : 8, 1000000));
    t.barrier(deadline());
    t0 = now_seconds();
    ping_pong(n, lat_iters);
    double latency_us = (now_seconds() - t0) / lat_iters / 2 * 1e6;
    // Bandwidth.
    t0 = now_seconds();
    stream(n, o.window);
    int bw_iters = agree(
        iterations_for((now_seconds() - t0) / o.window, o.seconds_per_size, o.window, 1000000));
    t.barrier(deadline());
    t0 = now_seconds();
    stream(n, bw_iters);
    double seconds = now_seconds() - t0;
    double mbps = double(n) * bw_iters / seconds / double(1 << 20);
    if (me == 0) {
      fmt::print(
          "{{\"bytes\": {}, \"bandwidth_MBps\": {:.2f}, \"latency_us\": {:.3f}, "
          "\"lat_iters\": {}, \"bw_iters\": {}}}\n",
          n, mbps, latency_us, lat_iters, bw_iters);
      std::fflush(stdout);
    }
  }
  send_mr = {};
  recv_mr = {};
  t.shutdown(deadline());
}

int run_bench(const BenchOptions& o) {
  CONVEYOR_REQUIRE(o.min_bytes >= 1 && o.min_bytes <= o.max_bytes,
                   "--min-bytes {} must be between 1 and --max-bytes {}", o.min_bytes, o.max_bytes);
  // Each rank holds a send and a receive buffer of --max-bytes; refuse sizes that could not be
  // allocated before any rank starts, rather than failing inside both ranks.
  constexpr size_t kMaxMessageBytes = size_t{1} << 30;
  CONVEYOR_REQUIRE(o.max_bytes <= kMaxMessageBytes,
                   "--max-bytes {} is above the largest message this bench sends (1 GiB = {})",
                   o.max_bytes, kMaxMessageBytes);
  CONVEYOR_REQUIRE(o.factor > 1, "--factor {} must be above 1", o.factor);
  CONVEYOR_REQUIRE(o.window >= 1, "--window {} must be at least 1", o.window);
  if (std::getenv(kEnvWorldSize) != nullptr) {  // started by a launcher: one of two ranks
    auto opts = transport::options_from_env("bench-transport");
    CONVEYOR_REQUIRE(opts.world_size == 2, "bench transport needs {}=2, not {}",
                     opts.world_size_from, opts.world_size);
    if (o.pin) pin_to_cpu(opts.rank);
    auto t = Transport::create(opts);
    run_rank(*t, o);
    return kExitOk;
  }
  transport::Options opts;
  opts.world_size = 2;
  opts.master_addr = "127.0.0.1";
  opts.master_port = free_tcp_port();
  opts.job_token = fmt::format("{:x}", std::random_device{}());
  opts.fingerprint = "bench-transport";
  opts.connect_timeout_s = 30;
  std::fflush(stdout);
  pid_t child = ::fork();  // before any UCX object exists
  CONVEYOR_CHECK(child >= 0, "bench transport: fork failed");
  if (child == 0) {
    int code = kExitOk;
    try {
      opts.rank = 1;
      if (o.pin) pin_to_cpu(opts.rank);
      auto t = Transport::create(opts);
      run_rank(*t, o);
    } catch (const Error& e) {
      std::fprintf(stderr, "conveyor bench transport (rank 1): %s\n", describe(e).c_str());
      code = e.exit_code();
    }
    std::fflush(stderr);
    _exit(code);
  }
  int code = kExitOk;
  try {
    opts.rank = 0;
    if (o.pin) pin_to_cpu(opts.rank);
    auto t = Transport::create(opts);
    run_rank(*t, o);
  } catch (...) {
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    throw;
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Error(ErrorKind::kRuntime,
                "bench transport: the second rank failed (see its message above)");
  return code;
}

}  // namespace

void add_bench_transport(CLI::App& bench, BenchRunner& run) {
  auto o = std::make_shared<BenchOptions>();
  auto* sub = bench.add_subcommand(
      "transport",
      "Ping-pong latency and streaming bandwidth between two ranks through conveyor's "
      "transport; one JSON line per size (compare: bench/transport_vs_ucx_perftest.sh)");
  sub->add_option("--min-bytes", o->min_bytes, "smallest message (default 8)");
  sub->add_option("--max-bytes", o->max_bytes, "largest message (default 64 MiB)");
  sub->add_option("--factor", o->factor, "size multiplier between rows (default 2)");
  sub->add_option("--window", o->window, "sends in flight in the bandwidth test (default 32)");
  sub->add_option("--seconds-per-size", o->seconds_per_size,
                  "time budget per size and test (default 0.3)");
  sub->add_flag("--pin", o->pin, "run rank r on CPU r (as `taskset -c r` would)");
  sub->callback([&run, o] { run = [o] { return run_bench(*o); }; });
}

}  // namespace conveyor::cli
