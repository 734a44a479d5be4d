// Every op's forward against a double-precision reference, and every backward against
// central finite differences of that reference (tiny shapes, all in double), on every
// backend through the kernels::Backend interface (see backend_test_util.h).
//
// Method: for an op y = f(x), pick a random projection r and let L(x) = sum(r * f(x)) in
// double. The float backward called with dout = r must add dL/dx to its gradient buffers,
// which start non-zero to check the accumulate (+=) convention.
// Tolerance: |got - want| <= 2e-4 + 2e-3 |want|. Float kernels are accurate to ~1e-6 at
// these sizes and the finite differences to ~1e-9, so a wrong formula (errors of order
// one) cannot pass, while float rounding never fails.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/backend.h"
#include "tests/unit/kernels/backend_test_util.h"
#include "tests/unit/kernels/kernel_test_util.h"

using namespace conveyor::kernels_test;
using V = std::vector<double>;

namespace {

constexpr double kAtol = 2e-4;
constexpr double kRtol = 2e-3;
constexpr double kFwdAtol = 1e-5;
constexpr double kFwdRtol = 1e-5;

// ---- double references --------------------------------------------------------------

V ref_layernorm(const V& x, const V& w, const V& b, int N, int C) {
  V out(x.size());
  for (int n = 0; n < N; ++n) {
    double m = 0, v = 0;
    for (int i = 0; i < C; ++i) m += x[n * C + i];
    m /= C;
    for (int i = 0; i < C; ++i) v += (x[n * C + i] - m) * (x[n * C + i] - m);
    v /= C;
    const double s = 1.0 / std::sqrt(v + 1e-5);
    for (int i = 0; i < C; ++i) out[n * C + i] = (x[n * C + i] - m) * s * w[i] + b[i];
  }
  return out;
}

V ref_linear(const V& x, const V& w, const V* b, int N, int IC, int OC) {
  V out(static_cast<size_t>(N) * OC);
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < OC; ++o) {
      double s = b ? (*b)[o] : 0.0;
      for (int i = 0; i < IC; ++i) s += x[n * IC + i] * w[o * IC + i];
      out[n * OC + o] = s;
    }
  return out;
}

V ref_attention(const V& qkv, int B, int T, int C, int NH, V* att_out = nullptr) {
  const int hd = C / NH;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  V out(static_cast<size_t>(B) * T * C, 0.0);
  if (att_out) att_out->assign(static_cast<size_t>(B) * NH * T * T, 0.0);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < NH; ++h)
      for (int t = 0; t < T; ++t) {
        const double* q = &qkv[(b * T + t) * 3 * C + h * hd];
        V score(t + 1);
        double mx = -1e300;
        for (int j = 0; j <= t; ++j) {
          const double* k = &qkv[(b * T + j) * 3 * C + C + h * hd];
          double s = 0;
          for (int d = 0; d < hd; ++d) s += q[d] * k[d];
          score[j] = s * scale;
          mx = std::max(mx, score[j]);
        }
        double sum = 0;
        for (int j = 0; j <= t; ++j) sum += (score[j] = std::exp(score[j] - mx));
        for (int j = 0; j <= t; ++j) {
          const double p = score[j] / sum;
          if (att_out) (*att_out)[((b * NH + h) * T + t) * T + j] = p;
          const double* v = &qkv[(b * T + j) * 3 * C + 2 * C + h * hd];
          for (int d = 0; d < hd; ++d) out[(b * T + t) * C + h * hd + d] += p * v[d];
        }
      }
  return out;
}

double ref_gelu(double x) {
  const double k = std::sqrt(2.0 / M_PI);
  return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
}

V ref_crossentropy(const V& logits, const std::vector<int32_t>& targets, int N, int Vn) {
  V losses(N);
  for (int n = 0; n < N; ++n) {
    double mx = -1e300, sum = 0;
    for (int j = 0; j < Vn; ++j) mx = std::max(mx, logits[n * Vn + j]);
    for (int j = 0; j < Vn; ++j) sum += std::exp(logits[n * Vn + j] - mx);
    losses[n] = std::log(sum) + mx - logits[n * Vn + targets[n]];
  }
  return losses;
}

}  // namespace

BACKEND_TEST_CASE("embedding forward and backward match the reference", "[kernels]") {
  const int B = 2, T = 5, C = 8, Vocab = 7;
  const std::vector<int32_t> tokens = {3, 1, 3, 6, 0, 2, 2, 5, 3, 1};  // repeats on purpose
  const auto wte = random_floats(Vocab * C, 1), wpe = random_floats(T * C, 2);
  const auto r = random_floats(B * T * C, 3);
  auto tokens_b = upload(backend, tokens);
  auto wte_b = upload(backend, wte), wpe_b = upload(backend, wpe), r_b = upload(backend, r);
  auto out_b = backend.alloc<float>(B * T * C);
  backend.embedding_forward(out_b.data(), tokens_b.data(), wte_b.data(), wpe_b.data(), B, T, C);
  auto ref = [&](const V& e, const V& p) {
    V o(B * T * C);
    for (int b = 0; b < B; ++b)
      for (int t = 0; t < T; ++t)
        for (int i = 0; i < C; ++i)
          o[(b * T + t) * C + i] = e[tokens[b * T + t] * C + i] + p[t * C + i];
    return o;
  };
  expect_close(download(backend, out_b), ref(to_double(wte), to_double(wpe)), kFwdAtol, kFwdRtol,
               "embedding out");

  const auto dwte0 = random_floats(wte.size(), 4), dwpe0 = random_floats(wpe.size(), 5);
  auto dwte_b = upload(backend, dwte0), dwpe_b = upload(backend, dwpe0);
  backend.embedding_backward(dwte_b.data(), dwpe_b.data(), r_b.data(), tokens_b.data(), B, T, C);
  const V pd = to_double(wpe), ed = to_double(wte);
  expect_close(added(download(backend, dwte_b), dwte0),
               numeric_grad(ed, [&](const V& e) { return dot(ref(e, pd), r); }), kAtol, kRtol,
               "dwte");
  expect_close(added(download(backend, dwpe_b), dwpe0),
               numeric_grad(pd, [&](const V& p) { return dot(ref(ed, p), r); }), kAtol, kRtol,
               "dwpe");
}

BACKEND_TEST_CASE("layernorm forward and split backward match the reference", "[kernels]") {
  for (int C : {8, 37}) {  // 37: both the 16-wide main loop and the tail
    DYNAMIC_SECTION("C=" << C) {
      const int N = 6;
      const auto x = random_floats(N * C, 10, -2, 2), w = random_floats(C, 11, 0.5, 1.5),
                 b = random_floats(C, 12), r = random_floats(N * C, 13);
      auto x_b = upload(backend, x), w_b = upload(backend, w), b_b = upload(backend, b),
           r_b = upload(backend, r);
      auto out_b = backend.alloc<float>(N * C), mean_b = backend.alloc<float>(N),
           rstd_b = backend.alloc<float>(N);
      backend.layernorm_forward(out_b.data(), mean_b.data(), rstd_b.data(), x_b.data(), w_b.data(),
                                b_b.data(), N, C);
      const V xd = to_double(x), wd = to_double(w), bd = to_double(b);
      expect_close(download(backend, out_b), ref_layernorm(xd, wd, bd, N, C), kFwdAtol, kFwdRtol,
                   "layernorm out");

      const auto dx0 = random_floats(x.size(), 14), dw0 = random_floats(C, 15),
                 db0 = random_floats(C, 16);
      auto dx_b = upload(backend, dx0), dw_b = upload(backend, dw0), db_b = upload(backend, db0);
      backend.layernorm_backward_input(dx_b.data(), r_b.data(), x_b.data(), w_b.data(),
                                       mean_b.data(), rstd_b.data(), N, C);
      backend.layernorm_backward_weight(dw_b.data(), db_b.data(), r_b.data(), x_b.data(),
                                        mean_b.data(), rstd_b.data(), N, C);
      expect_close(
          added(download(backend, dx_b), dx0),
          numeric_grad(xd, [&](const V& v) { return dot(ref_layernorm(v, wd, bd, N, C), r); }),
          kAtol, kRtol, "layernorm dinp");
      expect_close(
          added(download(backend, dw_b), dw0),
          numeric_grad(wd, [&](const V& v) { return dot(ref_layernorm(xd, v, bd, N, C), r); }),
          kAtol, kRtol, "layernorm dweight");
      expect_close(
          added(download(backend, db_b), db0),
          numeric_grad(bd, [&](const V& v) { return dot(ref_layernorm(xd, wd, v, N, C), r); }),
          kAtol, kRtol, "layernorm dbias");
    }
  }
}

BACKEND_TEST_CASE("linear forward and split backward match the reference with and without bias",
                  "[kernels]") {
  const int N = 10, IC = 8, OC = 12;
  for (bool with_bias : {true, false}) {
    DYNAMIC_SECTION("bias=" << with_bias) {
      const auto x = random_floats(N * IC, 20), w = random_floats(OC * IC, 21),
                 b = random_floats(OC, 22), r = random_floats(N * OC, 23);
      auto x_b = upload(backend, x), w_b = upload(backend, w), b_b = upload(backend, b),
           r_b = upload(backend, r);
      const float* bias = with_bias ? b_b.data() : nullptr;
      auto out_b = backend.alloc<float>(N * OC);
      backend.linear_forward(out_b.data(), x_b.data(), w_b.data(), bias, N, IC, OC);
      const V xd = to_double(x), wd = to_double(w), bd = to_double(b);
      const V* bref = with_bias ? &bd : nullptr;
      expect_close(download(backend, out_b), ref_linear(xd, wd, bref, N, IC, OC), kFwdAtol,
                   kFwdRtol, "linear out");

      const auto dx0 = random_floats(x.size(), 24), dw0 = random_floats(w.size(), 25),
                 db0 = random_floats(OC, 26);
      auto dx_b = upload(backend, dx0), dw_b = upload(backend, dw0), db_b = upload(backend, db0);
      backend.linear_backward_input(dx_b.data(), r_b.data(), w_b.data(), N, IC, OC);
      backend.linear_backward_weight(dw_b.data(), with_bias ? db_b.data() : nullptr, r_b.data(),
                                     x_b.data(), N, IC, OC);
      expect_close(
          added(download(backend, dx_b), dx0),
          numeric_grad(xd, [&](const V& v) { return dot(ref_linear(v, wd, bref, N, IC, OC), r); }),
          kAtol, kRtol, "linear dinp");
      expect_close(
          added(download(backend, dw_b), dw0),
          numeric_grad(wd, [&](const V& v) { return dot(ref_linear(xd, v, bref, N, IC, OC), r); }),
          kAtol, kRtol, "linear dweight");
      if (with_bias) {
        expect_close(
            added(download(backend, db_b), db0),
            numeric_grad(bd, [&](const V& v) { return dot(ref_linear(xd, wd, &v, N, IC, OC), r); }),
            kAtol, kRtol, "linear dbias");
      } else {
        CHECK(download(backend, db_b) == db0);  // untouched when dbias is null
      }
    }
  }
}

BACKEND_TEST_CASE("attention forward and backward match the reference", "[kernels]") {
  struct Shape {
    int B, T, C, NH;
  };
  for (Shape s : {Shape{2, 5, 8, 2}, Shape{1, 19, 12, 3}}) {  // T=19 > 16: lane tails too
    DYNAMIC_SECTION("B=" << s.B << " T=" << s.T << " C=" << s.C << " NH=" << s.NH) {
      const size_t nqkv = static_cast<size_t>(s.B) * s.T * 3 * s.C;
      const size_t natt = static_cast<size_t>(s.B) * s.NH * s.T * s.T;
      const auto qkv = random_floats(nqkv, 30, -1.5, 1.5);
      const auto r = random_floats(static_cast<size_t>(s.B) * s.T * s.C, 31);
      auto qkv_b = upload(backend, qkv), r_b = upload(backend, r);
      auto out_b = backend.alloc<float>(r.size());
      auto att_b = upload(backend, std::vector<float>(natt, -7.0f));  // all must be written
      backend.attention_forward(out_b.data(), att_b.data(), qkv_b.data(), s.B, s.T, s.C, s.NH);
      const V qd = to_double(qkv);
      V att_ref;
      expect_close(download(backend, out_b), ref_attention(qd, s.B, s.T, s.C, s.NH, &att_ref),
                   kFwdAtol, kFwdRtol, "attention out");
      expect_close(download(backend, att_b), att_ref, kFwdAtol, kFwdRtol,
                   "attention probabilities (zero above diagonal)");

      const auto dqkv0 = random_floats(nqkv, 32);
      auto dqkv_b = upload(backend, dqkv0);
      auto scratch_b = upload(backend, std::vector<float>(natt, 123.0f));  // contents ignored
      backend.attention_backward(dqkv_b.data(), scratch_b.data(), r_b.data(), qkv_b.data(),
                                 att_b.data(), s.B, s.T, s.C, s.NH);
      expect_close(
          added(download(backend, dqkv_b), dqkv0),
          numeric_grad(qd,
                       [&](const V& v) { return dot(ref_attention(v, s.B, s.T, s.C, s.NH), r); }),
          kAtol, kRtol, "attention dqkv");
    }
  }
}

BACKEND_TEST_CASE("gelu forward and backward match the reference", "[kernels]") {
  auto x = random_floats(61, 40, -5, 5);
  for (float e : {0.0f, -0.0f, 1e-6f, -1e-6f, 8.0f, -8.0f, 30.0f, -30.0f, 1e4f, -1e4f})
    x.push_back(e);
  const auto r = random_floats(x.size(), 41);
  auto x_b = upload(backend, x), r_b = upload(backend, r);
  auto out_b = backend.alloc<float>(x.size());
  backend.gelu_forward(out_b.data(), x_b.data(), x.size());
  V want(x.size());
  for (size_t i = 0; i < x.size(); ++i) want[i] = ref_gelu(x[i]);
  expect_close(download(backend, out_b), want, kFwdAtol, kFwdRtol, "gelu out");

  const auto dx0 = random_floats(x.size(), 42);
  auto dx_b = upload(backend, dx0);
  backend.gelu_backward(dx_b.data(), x_b.data(), r_b.data(), x.size());
  V fd(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double h = 1e-5 * std::max(1.0, std::fabs(static_cast<double>(x[i])));
    fd[i] = r[i] * (ref_gelu(x[i] + h) - ref_gelu(x[i] - h)) / (2 * h);
  }
  expect_close(added(download(backend, dx_b), dx0), fd, kAtol, kRtol, "gelu dinp");
}

BACKEND_TEST_CASE("cross-entropy forward and backward match the reference", "[kernels]") {
  const int N = 6, Vn = 37;
  const auto logits = random_floats(N * Vn, 50, -3, 3);
  const std::vector<int32_t> targets = {0, 36, 5, 5, 17, 20};
  auto logits_b = upload(backend, logits);
  auto targets_b = upload(backend, targets);
  auto losses_b = backend.alloc<float>(N), probs_b = backend.alloc<float>(N * Vn);
  backend.crossentropy_forward(losses_b.data(), probs_b.data(), logits_b.data(), targets_b.data(),
                               N, Vn);
  const V ld = to_double(logits);
  expect_close(download(backend, losses_b), ref_crossentropy(ld, targets, N, Vn), kFwdAtol,
               kFwdRtol, "losses");

  const float scale = 1.0f / N;
  const auto d0 = random_floats(logits.size(), 51);
  auto d_b = upload(backend, d0);
  backend.crossentropy_backward(d_b.data(), probs_b.data(), targets_b.data(), scale, N, Vn);
  expect_close(added(download(backend, d_b), d0),
               numeric_grad(ld,
                            [&](const V& v) {
                              double s = 0;
                              for (double l : ref_crossentropy(v, targets, N, Vn)) s += l;
                              return s * scale;
                            }),
               kAtol, kRtol, "dlogits");
}
