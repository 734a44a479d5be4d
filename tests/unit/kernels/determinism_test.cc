// Same inputs, same bits, whatever the number of OpenBLAS threads or kernel threads.
// The shapes give every kernel several tasks, and the weight gradient sums over more than
// one OpenBLAS K block (N = 1024 rows). OpenBLAS 0.3.21 alone fails this (its threading
// moves tile edges), which is why the kernels run it single-threaded inside their tasks.
#include <cblas.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "kernels/cpu/ops.h"
#include "kernels/cpu/parallel.h"
#include "tests/unit/kernels/kernel_test_util.h"

namespace cpu = conveyor::cpu;
using namespace conveyor::kernels_test;

namespace {

// Every output of a forward+backward pass through each threaded kernel.
std::vector<std::vector<float>> run_ops() {
  const int N = 1024, IC = 256, OC = 384;
  const auto x = random_floats(N * IC, 100), w = random_floats(OC * IC, 101),
             b = random_floats(OC, 102), dout = random_floats(N * OC, 103);
  std::vector<float> y(N * OC), dx(N * IC, 0.5f), dw(OC * IC, 0.25f), db(OC, 0.0f);
  cpu::linear_forward(y.data(), x.data(), w.data(), b.data(), N, IC, OC);
  cpu::linear_backward_input(dx.data(), dout.data(), w.data(), N, IC, OC);
  cpu::linear_backward_weight(dw.data(), db.data(), dout.data(), x.data(), N, IC, OC);

  std::vector<float> g(y.size()), dg(y.size(), 0.0f);
  cpu::gelu_forward(g.data(), y.data(), y.size());
  cpu::gelu_backward(dg.data(), y.data(), dout.data(), y.size());

  std::vector<float> ln(N * IC), mean(N), rstd(N), dln(N * IC, 0.0f);
  const auto lw = random_floats(IC, 106), lb = random_floats(IC, 107);
  cpu::layernorm_forward(ln.data(), mean.data(), rstd.data(), x.data(), lw.data(), lb.data(), N,
                         IC);
  cpu::layernorm_backward_input(dln.data(), dx.data(), x.data(), lw.data(), mean.data(),
                                rstd.data(), N, IC);

  std::vector<int32_t> targets(N);
  for (int n = 0; n < N; ++n) targets[n] = (n * 37) % OC;
  std::vector<float> losses(N), probs(N * OC), dlogits(N * OC, 0.0f);
  cpu::crossentropy_forward(losses.data(), probs.data(), y.data(), targets.data(), N, OC);
  cpu::crossentropy_backward(dlogits.data(), probs.data(), targets.data(), 1.0f / N, N, OC);

  const int B = 2, T = 128, C = 128, NH = 2;
  const auto qkv = random_floats(B * T * 3 * C, 104), dao = random_floats(B * T * C, 105);
  std::vector<float> out(B * T * C), att(B * NH * T * T), scratch(att.size()),
      dqkv(qkv.size(), 0.0f);
  cpu::attention_forward(out.data(), att.data(), qkv.data(), B, T, C, NH);
  cpu::attention_backward(dqkv.data(), scratch.data(), dao.data(), qkv.data(), att.data(), B, T, C,
                          NH);

  auto p = x, m = x, v = w;
  v.resize(p.size(), 0.0f);
  for (auto& e : v) e = e * e;
  cpu::AdamWParams hp;
  hp.lr = 1e-3f;
  hp.weight_decay = 0.1f;
  cpu::adamw_update(p.data(), dx.data(), m.data(), v.data(), p.size(), hp);
  return {y, dx, dw, db, g, dg, ln, dln, losses, dlogits, out, att, dqkv, p, m, v};
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

void check_same(const std::vector<std::vector<float>>& a,
                const std::vector<std::vector<float>>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("output #" << i << " of run_ops");
    CHECK(same_bits(a[i], b[i]));
  }
}

// Restores both thread counts when a test ends, pass or fail.
struct ThreadCountGuard {
  int blas = openblas_get_num_threads();
  int kernels = cpu::num_threads();
  ~ThreadCountGuard() {
    openblas_set_num_threads(blas);
    cpu::set_num_threads(kernels);
  }
};

}  // namespace

TEST_CASE("kernels give identical bits with 1 and 2 OpenBLAS threads", "[kernels]") {
  ThreadCountGuard guard;
  openblas_set_num_threads(1);
  const auto one = run_ops();
  openblas_set_num_threads(2);
  REQUIRE(openblas_get_num_threads() == 2);
  const auto two = run_ops();
  check_same(one, two);
}

TEST_CASE("kernels give identical bits with 1, 2 and 3 kernel threads", "[kernels]") {
  ThreadCountGuard guard;
  cpu::set_num_threads(1);
  const auto one = run_ops();
  for (int threads : {2, 3}) {
    cpu::set_num_threads(threads);
    REQUIRE(cpu::num_threads() == threads);
    INFO(threads << " threads");
    check_same(one, run_ops());
  }
}

TEST_CASE("parallel_for runs every task exactly once, also nested and concurrently", "[kernels]") {
  ThreadCountGuard guard;
  cpu::set_num_threads(3);
  auto count_runs = [](size_t n) {
    std::vector<std::atomic<int>> hits(n);
    conveyor::cpu::detail::parallel_for(n, [&](size_t i) {
      hits[i].fetch_add(1);
      // A nested call runs inline and must complete too.
      std::atomic<int> inner{0};
      conveyor::cpu::detail::parallel_for(3, [&](size_t) { inner.fetch_add(1); });
      hits[i].fetch_add(inner.load() == 3 ? 0 : 100);
    });
    int bad = 0;
    for (auto& h : hits) bad += h.load() != 1;
    return bad;
  };
  CHECK(count_runs(0) == 0);
  CHECK(count_runs(1) == 0);
  CHECK(count_runs(1000) == 0);
  int bad_a = -1, bad_b = -1;
  std::thread a([&] {
    bad_a = 0;
    for (int r = 0; r < 50; ++r) bad_a += count_runs(97);
  });
  std::thread b([&] {
    bad_b = 0;
    for (int r = 0; r < 50; ++r) bad_b += count_runs(31);
  });
  a.join();
  b.join();
  CHECK(bad_a == 0);
  CHECK(bad_b == 0);
}
