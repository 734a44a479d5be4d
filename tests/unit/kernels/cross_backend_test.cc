// Every backend other than cpu against the cpu backend, op by op, forward and backward, from
// the same host inputs (each op gets its inputs uploaded, so a difference upstream cannot hide
// or excuse one downstream). Registered once per runnable backend other than cpu (see
// backend_test_util.h), so with the cpu backend alone it does not exist: nothing is compared
// and nothing is reported as passing.
//
// What each op must match (the contract in kernels/cuda/ops.h; docs/GPU.md repeats it):
// - Same bits: embedding, layernorm, GELU, residual, softmax probabilities, cross-entropy
//   backward, the linear bias gradient, AdamW, scale/add, and the double sums for
//   n <= 4096. These follow the CPU's operations in the CPU's order.
// - kGemmAtol + kGemmRtol * |cpu|: linear and attention, forward and backward. The products
//   are summed in another order (cuBLAS tiles and split-K against OpenBLAS panels); for
//   K-term fp32 dot products of inputs in [-1, 1] the difference is at most about
//   K * 2^-24 * max|term| (< 1e-6 at K <= 64 here), so 2e-5 + 1e-5 |cpu| has margin while an
//   indexing or transpose error (differences of order one) fails.
// - kLossAtol + kLossRtol * |cpu|: cross-entropy losses. CUDA's logf and glibc's logf are
//   both within an ulp of log but may round differently.
// - kSumRtol * sum|x| (or * sum x^2): sums of more than 4096 elements, added in 4096-element
//   chunks on the GPU rather than in one running sum.
//
// Each op's own correctness is checked on every backend against double references in
// gradients_test.cc and properties_test.cc.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "tests/unit/kernels/backend_test_util.h"
#include "tests/unit/kernels/kernel_test_util.h"

using namespace conveyor::kernels;
using namespace conveyor::kernels_test;

namespace {

constexpr double kGemmAtol = 2e-5;
constexpr double kGemmRtol = 1e-5;
constexpr double kLossAtol = 1e-6;
constexpr double kLossRtol = 1e-6;
constexpr double kSumRtol = 1e-12;

using Floats = std::vector<float>;

// Shapes with tails: C = 37 is not a multiple of 16 lanes, T = 19 rows of attention reach
// past 16 entries, V = 300 classes.
constexpr int B = 2, T = 19, C = 48, NH = 3, N = B * T, Vocab = 300;
constexpr int LnC = 37;

// One op's outputs on a backend, downloaded.
struct Run {
  Backend& be;
  template <typename T_>
  Buffer<T_> up(const std::vector<T_>& v) {
    return upload(be, v);
  }
  Floats down(const Buffer<float>& b) { return download(be, b); }
};

void same_bits(Backend& cpu, Backend& gpu, const std::string& what,
               const std::function<std::vector<Floats>(Run&)>& op) {
  Run rc{cpu}, rg{gpu};
  const auto want = op(rc), got = op(rg);
  REQUIRE(want.size() == got.size());
  for (size_t i = 0; i < want.size(); ++i)
    expect_same_bits(got[i], want[i], what + " output " + std::to_string(i));
}

void close(Backend& cpu, Backend& gpu, const std::string& what, double atol, double rtol,
           const std::function<std::vector<Floats>(Run&)>& op) {
  Run rc{cpu}, rg{gpu};
  const auto want = op(rc), got = op(rg);
  REQUIRE(want.size() == got.size());
  for (size_t i = 0; i < want.size(); ++i)
    expect_close(got[i], to_double(want[i]), atol, rtol, what + " output " + std::to_string(i));
}

std::vector<int32_t> token_ids(int n, int vocab, uint32_t seed) {
  std::vector<int32_t> t(n);
  for (int i = 0; i < n; ++i) t[i] = static_cast<int32_t>((i * 7 + seed * 13 + i * i) % vocab);
  t[3] = t[0];  // repeats, so the embedding gradient adds several rows into one
  t[5] = t[0];
  return t;
}

}  // namespace

CROSS_BACKEND_TEST_CASE("embedding matches the cpu backend bit for bit", "[kernels]") {
  const auto tokens = token_ids(N, Vocab, 1);
  same_bits(cpu, backend, "embedding", [&](Run& r) {
    auto tok = r.up(tokens);
    auto wte = r.up(random_floats(Vocab * C, 200)), wpe = r.up(random_floats(T * C, 201));
    auto out = r.be.alloc<float>(N * C);
    r.be.embedding_forward(out.data(), tok.data(), wte.data(), wpe.data(), B, T, C);
    auto dwte = r.up(random_floats(Vocab * C, 202)), dwpe = r.up(random_floats(T * C, 203));
    auto dout = r.up(random_floats(N * C, 204));
    r.be.embedding_backward(dwte.data(), dwpe.data(), dout.data(), tok.data(), B, T, C);
    return std::vector<Floats>{r.down(out), r.down(dwte), r.down(dwpe)};
  });
}

CROSS_BACKEND_TEST_CASE("layernorm matches the cpu backend bit for bit", "[kernels]") {
  same_bits(cpu, backend, "layernorm", [&](Run& r) {
    auto x = r.up(random_floats(N * LnC, 205, -2, 2)), w = r.up(random_floats(LnC, 206, 0.5, 1.5)),
         b = r.up(random_floats(LnC, 207));
    auto out = r.be.alloc<float>(N * LnC), mean = r.be.alloc<float>(N), rstd = r.be.alloc<float>(N);
    r.be.layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N,
                           LnC);
    auto dout = r.up(random_floats(N * LnC, 208)), dx = r.up(random_floats(N * LnC, 209));
    auto dw = r.up(random_floats(LnC, 210)), db = r.up(random_floats(LnC, 211));
    r.be.layernorm_backward_input(dx.data(), dout.data(), x.data(), w.data(), mean.data(),
                                  rstd.data(), N, LnC);
    r.be.layernorm_backward_weight(dw.data(), db.data(), dout.data(), x.data(), mean.data(),
                                   rstd.data(), N, LnC);
    return std::vector<Floats>{r.down(out), r.down(mean), r.down(rstd),
                               r.down(dx),  r.down(dw),   r.down(db)};
  });
}

CROSS_BACKEND_TEST_CASE("linear matches the cpu backend within the matmul tolerance", "[kernels]") {
  const int IC = C, OC = 3 * C;
  close(cpu, backend, "linear", kGemmAtol, kGemmRtol, [&](Run& r) {
    auto x = r.up(random_floats(N * IC, 212)), w = r.up(random_floats(OC * IC, 213)),
         b = r.up(random_floats(OC, 214)), dout = r.up(random_floats(N * OC, 215));
    auto out = r.be.alloc<float>(N * OC), out_nobias = r.be.alloc<float>(N * OC);
    r.be.linear_forward(out.data(), x.data(), w.data(), b.data(), N, IC, OC);
    r.be.linear_forward(out_nobias.data(), x.data(), w.data(), nullptr, N, IC, OC);
    auto dx = r.up(random_floats(N * IC, 216)), dw = r.up(random_floats(OC * IC, 217)),
         dw2 = r.up(random_floats(OC * IC, 218)), db = r.up(random_floats(OC, 219));
    r.be.linear_backward_input(dx.data(), dout.data(), w.data(), N, IC, OC);
    r.be.linear_backward_weight(dw.data(), db.data(), dout.data(), x.data(), N, IC, OC);
    r.be.linear_backward_weight(dw2.data(), nullptr, dout.data(), x.data(), N, IC, OC);
    return std::vector<Floats>{r.down(out), r.down(out_nobias), r.down(dx), r.down(dw),
                               r.down(dw2)};
  });
  same_bits(cpu, backend, "linear bias gradient", [&](Run& r) {
    auto x = r.up(random_floats(N * IC, 212)), dout = r.up(random_floats(N * OC, 215));
    auto dw = r.up(random_floats(OC * IC, 217)), db = r.up(random_floats(OC, 219));
    r.be.linear_backward_weight(dw.data(), db.data(), dout.data(), x.data(), N, IC, OC);
    return std::vector<Floats>{r.down(db)};
  });
}

CROSS_BACKEND_TEST_CASE("attention matches the cpu backend within the matmul tolerance",
                        "[kernels]") {
  const size_t natt = static_cast<size_t>(B) * NH * T * T;
  close(cpu, backend, "attention", kGemmAtol, kGemmRtol, [&](Run& r) {
    auto qkv = r.up(random_floats(N * 3 * C, 220, -1.5f, 1.5f));
    auto out = r.be.alloc<float>(N * C), att = r.be.alloc<float>(natt);
    r.be.attention_forward(out.data(), att.data(), qkv.data(), B, T, C, NH);
    auto dout = r.up(random_floats(N * C, 221)), dqkv = r.up(random_floats(N * 3 * C, 222));
    auto scratch = r.be.alloc<float>(natt);
    r.be.attention_backward(dqkv.data(), scratch.data(), dout.data(), qkv.data(), att.data(), B, T,
                            C, NH);
    return std::vector<Floats>{r.down(out), r.down(att), r.down(dqkv)};
  });
}

CROSS_BACKEND_TEST_CASE("gelu and residual match the cpu backend bit for bit", "[kernels]") {
  auto x = random_floats(4099, 223, -6, 6);
  for (float e : {0.0f, -0.0f, 1e-6f, -1e-6f, 30.0f, -30.0f, 1e4f, -1e4f, 1e-40f}) x.push_back(e);
  same_bits(cpu, backend, "gelu/residual", [&](Run& r) {
    auto in = r.up(x), dout = r.up(random_floats(x.size(), 224)),
         dx = r.up(random_floats(x.size(), 225)), y = r.up(random_floats(x.size(), 226));
    auto out = r.be.alloc<float>(x.size()), res = r.be.alloc<float>(x.size());
    r.be.gelu_forward(out.data(), in.data(), x.size());
    r.be.gelu_backward(dx.data(), in.data(), dout.data(), x.size());
    r.be.residual_forward(res.data(), in.data(), y.data(), x.size());
    return std::vector<Floats>{r.down(out), r.down(dx), r.down(res)};
  });
}

CROSS_BACKEND_TEST_CASE("cross-entropy matches the cpu backend", "[kernels]") {
  std::vector<int32_t> targets(N);
  for (int n = 0; n < N; ++n) targets[n] = (n * 37 + 5) % Vocab;
  auto logits = random_floats(N * Vocab, 227, -4, 4);
  logits[3 * Vocab + 11] = 60.0f;  // a confident row: probabilities near underflow
  auto run = [&](Run& r) {
    auto l = r.up(logits);
    auto t = r.up(targets);
    auto losses = r.be.alloc<float>(N), probs = r.be.alloc<float>(N * Vocab);
    r.be.crossentropy_forward(losses.data(), probs.data(), l.data(), t.data(), N, Vocab);
    return std::vector<Floats>{r.down(losses), r.down(probs)};
  };
  Run rc{cpu}, rg{backend};
  const auto want = run(rc), got = run(rg);
  expect_close(got[0], to_double(want[0]), kLossAtol, kLossRtol, "cross-entropy losses");
  expect_same_bits(got[1], want[1], "cross-entropy probabilities");

  const Floats probs = want[1];  // the same probabilities into both backward calls
  same_bits(cpu, backend, "cross-entropy backward", [&](Run& r) {
    auto p = r.up(probs);
    auto t = r.up(targets);
    auto d = r.up(random_floats(N * Vocab, 228));
    r.be.crossentropy_backward(d.data(), p.data(), t.data(), 1.0f / N, N, Vocab);
    return std::vector<Floats>{r.down(d)};
  });
}

CROSS_BACKEND_TEST_CASE("AdamW, scale and add match the cpu backend bit for bit", "[kernels]") {
  const size_t n = 70001;
  same_bits(cpu, backend, "adamw/scale/add", [&](Run& r) {
    auto p = r.up(random_floats(n, 229)), g = r.up(random_floats(n, 230)),
         m = r.up(random_floats(n, 231, -0.1f, 0.1f)), v = r.up(random_floats(n, 232, 0, 0.01f));
    AdamWParams hp;
    hp.lr = 3e-3f;
    hp.weight_decay = 0.1f;
    for (int step = 1; step <= 3; ++step) {
      hp.step = step;
      r.be.adamw_update(p.data(), g.data(), m.data(), v.data(), n, hp);
    }
    auto x = r.up(random_floats(n, 233));
    r.be.scale_inplace(x.data(), n, 0.37f);
    r.be.add_inplace(x.data(), g.data(), n);
    return std::vector<Floats>{r.down(p), r.down(m), r.down(v), r.down(x)};
  });
}

CROSS_BACKEND_TEST_CASE("sums match the cpu backend: same bits up to 4096 elements, then close",
                        "[kernels]") {
  for (size_t n : {size_t{1}, size_t{4096}, size_t{4097}, size_t{300001}}) {
    DYNAMIC_SECTION("n=" << n) {
      const auto x = random_floats(n, 234);
      auto xc = upload(cpu, x), xg = upload(backend, x);
      const double sum_c = cpu.sum(xc.data(), n), sum_g = backend.sum(xg.data(), n);
      const double sq_c = cpu.sum_of_squares(xc.data(), n),
                   sq_g = backend.sum_of_squares(xg.data(), n);
      if (n <= 4096) {
        CHECK(sum_g == sum_c);
        CHECK(sq_g == sq_c);
      } else {
        double abs_sum = 0;
        for (float f : x) abs_sum += std::fabs(f);
        CHECK(std::fabs(sum_g - sum_c) <= kSumRtol * abs_sum);
        CHECK(std::fabs(sq_g - sq_c) <= kSumRtol * sq_c);
      }
    }
  }
}
