// `conveyor bench ...`: measurements next to outside references (see bench/ and
// docs/BENCHMARKS.md). Each subcommand prints JSON lines on stdout.
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bench/bench_allreduce.h"
#include "bench/bench_checkpoint.h"
#include "bench/bench_command.h"
#include "bench/bench_schedule.h"
#include "bench/bench_transport.h"
#include "common/error.h"
#include "common/stats.h"

namespace conveyor::cli {

namespace {

struct SgemmOptions {
  int m = 2048, n = 1024, k = 256;
  int repeats = 20;
  int threads = 0;
};

// Raw OpenBLAS sgemm rate for C[m,n] = A[m,k] @ B[k,n]^T, the shape of a linear layer's
// forward over m tokens: the ceiling the training step is measured against.
int run_sgemm(const SgemmOptions& o) {
  CONVEYOR_REQUIRE(o.m > 0 && o.n > 0 && o.k > 0 && o.repeats > 0,
                   "bench sgemm: --m, --n, --k and --repeats must be positive");
  const int threads = o.threads > 0
                          ? o.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  openblas_set_num_threads(threads);
  std::vector<float> a(size_t(o.m) * o.k, 0.5f), b(size_t(o.n) * o.k, 0.25f), c(size_t(o.m) * o.n);
  auto once = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, o.m, o.n, o.k, 1.0f, a.data(), o.k,
                b.data(), o.k, 0.0f, c.data(), o.n);
  };
  once();  // warm up
  std::vector<double> seconds;
  for (int r = 0; r < o.repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    once();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const double gflops = 2.0 * o.m * o.n * o.k / median(seconds) / 1e9;
  std::printf(
      "{\"bench\": \"sgemm\", \"m\": %d, \"n\": %d, \"k\": %d, \"threads\": %d, "
      "\"gflops\": %.2f}\n",
      o.m, o.n, o.k, threads, gflops);
  return kExitOk;
}

}  // namespace

void add_bench(CLI::App& app, BenchRunner& run) {
  auto* bench = app.add_subcommand("bench", "benchmarks (JSON lines on stdout)");
  bench->require_subcommand(1);

  auto sgemm = std::make_shared<SgemmOptions>();
  auto* s = bench->add_subcommand("sgemm", "OpenBLAS sgemm GFLOP/s (the compute ceiling)");
  s->add_option("--m", sgemm->m, "rows (tokens)")->capture_default_str();
  s->add_option("--n", sgemm->n, "output features")->capture_default_str();
  s->add_option("--k", sgemm->k, "input features")->capture_default_str();
  s->add_option("--repeats", sgemm->repeats)->capture_default_str();
  s->add_option("--threads", sgemm->threads, "0: all cores")->capture_default_str();
  s->callback([&run, sgemm] { run = [sgemm] { return run_sgemm(*sgemm); }; });

  add_bench_transport(*bench, run);
  add_bench_allreduce(*bench, run);
  add_bench_schedule(*bench, run);
  add_bench_checkpoint(*bench, run);
}

}  // namespace conveyor::cli
