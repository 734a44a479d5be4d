// `conveyor bench allreduce`: the ring all-reduce the data-parallel replicas use
// (pipeline/parallel/ring_all_reduce.h), over conveyor's transport, among every rank of a job
// started by `conveyor launch --nproc N`. Compare: bench/allreduce_vs_mpi.sh (Open MPI's
// MPI_Allreduce on the same host in the same run).
//
// Rank 0 prints one JSON object per size on stdout:
//   {"bytes", "ranks", "iters", "time_us", "algbw_GBps", "busbw_GBps"}
// in the convention of nccl-tests: algbw = bytes / time, busbw = algbw * 2 (N-1) / N (what
// each rank's link carries; a ring reaches at most the link's bandwidth), GB = 1e9 bytes.
// time_us is the mean of `iters` back-to-back reductions, measured on rank 0 between two
// barriers. Buffers are registered once, as the trainer's gradient buffers are.
#include "bench/bench_allreduce.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <vector>

#include <fmt/format.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/host_buffer.h"
#include "common/launch_env.h"
#include "pipeline/parallel/ring_all_reduce.h"
#include "pipeline/runtime/message_tag.h"
#include "transport/transport.h"

namespace conveyor::cli {
namespace {

struct AllReduceOptions {
  size_t min_bytes = 1u << 20;
  size_t max_bytes = 256u << 20;
  double factor = 2;
  double seconds_per_size = 0.5;  // rough time budget per size
};

Deadline deadline() {
  return Deadline::after_seconds(120);
}

int run_bench(const AllReduceOptions& o) {
  CONVEYOR_REQUIRE(o.min_bytes >= 4 && o.min_bytes <= o.max_bytes,
                   "--min-bytes {} must be between 4 and --max-bytes {}", o.min_bytes, o.max_bytes);
  CONVEYOR_REQUIRE(o.max_bytes <= size_t{4} << 30, "--max-bytes {} is above 4 GiB", o.max_bytes);
  CONVEYOR_REQUIRE(o.factor > 1, "--factor {} must be above 1", o.factor);
  CONVEYOR_REQUIRE(std::getenv(kEnvWorldSize) != nullptr,
                   "bench allreduce runs as the ranks of a job: conveyor launch --nproc N -- "
                   "conveyor bench allreduce");
  auto t = transport::Transport::create(transport::options_from_env("bench-allreduce"));
  t->set_tag_describer(pipeline::describe_message);
  const int N = t->world_size(), rank = t->rank();
  std::vector<int> group(static_cast<size_t>(N));
  std::iota(group.begin(), group.end(), 0);

  const size_t max_floats = o.max_bytes / sizeof(float);
  HostBuffer<float> data(max_floats);
  std::vector<float> scratch((max_floats + size_t(N) - 1) / size_t(N));
  auto data_mr =
      t->register_memory(data.data(), data.size() * sizeof(float), transport::MemoryType::kHost);
  auto scratch_mr = t->register_memory(scratch.data(), scratch.size() * sizeof(float),
                                       transport::MemoryType::kHost);
  const pipeline::RingRegions regions{&data_mr, &scratch_mr};
  uint64_t op = 0;

  for (double bytes = double(o.min_bytes); bytes <= double(o.max_bytes) * 1.0000001;
       bytes *= o.factor) {
    const size_t n = size_t(bytes) / sizeof(float);
    std::span<float> buf(data.data(), n);
    // Once, checked: every rank contributes rank + 1, so every element sums to N (N+1) / 2.
    std::fill(buf.begin(), buf.end(), float(rank + 1));
    t->barrier(deadline());
    const double t0 = now_seconds();
    pipeline::ring_all_reduce_sum(*t, group, buf, ++op, scratch, deadline(), {}, regions);
    const double first = now_seconds() - t0;
    const float want = float(N) * float(N + 1) / 2;
    CONVEYOR_CHECK(std::all_of(buf.begin(), buf.end(), [&](float x) { return x == want; }),
                   "bench allreduce: a wrong sum at {} bytes", n * sizeof(float));
    // Rank 0 decides the repeat count from the first run, so that every rank runs as many.
    std::vector<uint8_t> count(sizeof(int32_t));
    const int32_t iters =
        int32_t(std::clamp(o.seconds_per_size / std::max(first, 1e-6), 1.0, 1000.0));
    std::memcpy(count.data(), &iters, sizeof iters);
    t->broadcast(count, 0, deadline());
    int32_t repeats = 0;
    std::memcpy(&repeats, count.data(), sizeof repeats);
    std::fill(buf.begin(), buf.end(), 0.0f);  // sums of zeros stay finite
    t->barrier(deadline());
    const double start = now_seconds();
    for (int32_t i = 0; i < repeats; ++i)
      pipeline::ring_all_reduce_sum(*t, group, buf, ++op, scratch, deadline(), {}, regions);
    t->barrier(deadline());
    const double seconds = (now_seconds() - start) / repeats;
    if (rank == 0) {
      const double algbw = double(n * sizeof(float)) / seconds / 1e9;
      std::printf(
          "{\"bytes\": %zu, \"ranks\": %d, \"iters\": %d, \"time_us\": %.1f, \"algbw_GBps\": "
          "%.3f, \"busbw_GBps\": %.3f}\n",
          n * sizeof(float), N, repeats, seconds * 1e6, algbw, algbw * 2.0 * (N - 1) / N);
      std::fflush(stdout);
    }
  }
  data_mr = {};
  scratch_mr = {};
  t->shutdown(deadline());
  return kExitOk;
}

}  // namespace

void add_bench_allreduce(CLI::App& bench, BenchRunner& run) {
  auto o = std::make_shared<AllReduceOptions>();
  auto* sub = bench.add_subcommand(
      "allreduce",
      "Ring all-reduce bandwidth among the ranks of a job (conveyor launch --nproc N -- conveyor "
      "bench allreduce); one JSON line per size (compare: bench/allreduce_vs_mpi.sh)");
  sub->add_option("--min-bytes", o->min_bytes, "smallest buffer (default 1 MiB)");
  sub->add_option("--max-bytes", o->max_bytes, "largest buffer (default 256 MiB)");
  sub->add_option("--factor", o->factor, "size multiplier between rows (default 2)");
  sub->add_option("--seconds-per-size", o->seconds_per_size, "time budget per size (default 0.5)");
  sub->callback([&run, o] { run = [o] { return run_bench(*o); }; });
}

}  // namespace conveyor::cli
