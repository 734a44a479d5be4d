// Properties of the CPU kernels that users rely on beyond "the gradient is right":
// causality, the cross-entropy definition, AdamW's update rule, accumulate semantics of
// the split linear backward, and the helpers' exactness.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/ops.h"
#include "kernels/cpu/vec_math.h"
#include "tests/unit/kernels/kernel_test_util.h"

namespace cpu = conveyor::cpu;
using namespace conveyor::kernels_test;

TEST_CASE("attention is causal: a later token never changes earlier outputs", "[kernels]") {
  const int B = 2, T = 9, C = 8, NH = 2;
  const size_t row = 3 * C;
  const auto qkv = random_floats(B * T * row, 60);
  std::vector<float> out(B * T * C), att(B * NH * T * T);
  cpu::attention_forward(out.data(), att.data(), qkv.data(), B, T, C, NH);
  for (int changed = 1; changed < T; ++changed) {
    auto qkv2 = qkv;
    for (int b = 0; b < B; ++b)  // new q, k and v for every position >= changed
      for (size_t i = changed * row; i < T * row; ++i) qkv2[b * T * row + i] += 5.0f;
    std::vector<float> out2(out.size()), att2(att.size());
    cpu::attention_forward(out2.data(), att2.data(), qkv2.data(), B, T, C, NH);
    for (int b = 0; b < B; ++b) {
      INFO("changed from position " << changed << ", sequence " << b);
      const size_t before = static_cast<size_t>(changed) * C;
      CHECK(std::memcmp(&out[b * T * C], &out2[b * T * C], before * sizeof(float)) == 0);
      CHECK(std::memcmp(&out[b * T * C + before], &out2[b * T * C + before], C * sizeof(float)) !=
            0);
    }
  }
  for (int bh = 0; bh < B * NH; ++bh)
    for (int i = 0; i < T; ++i) {
      double sum = 0;
      for (int j = 0; j < T; ++j) {
        const float p = att[(bh * T + i) * T + j];
        if (j > i) CHECK(p == 0.0f);
        sum += p;
      }
      CHECK(sum == Approx(1.0).epsilon(1e-6));
    }
}

TEST_CASE("cross-entropy is -log of the softmax probability of the target", "[kernels]") {
  const int N = 5, Vn = 300;
  auto logits = random_floats(N * Vn, 61, -4, 4);
  logits[2 * Vn + 7] = 60.0f;  // row 2: a confident wrong answer, p(target) ~ e^-60
  const std::vector<int32_t> targets = {0, 299, 8, 150, 3};
  std::vector<float> losses(N), probs(N * Vn);
  cpu::crossentropy_forward(losses.data(), probs.data(), logits.data(), targets.data(), N, Vn);
  for (int n = 0; n < N; ++n) {
    double mx = -1e300, sum = 0;
    for (int j = 0; j < Vn; ++j) mx = std::max(mx, static_cast<double>(logits[n * Vn + j]));
    for (int j = 0; j < Vn; ++j) sum += std::exp(logits[n * Vn + j] - mx);
    double psum = 0;
    for (int j = 0; j < Vn; ++j) {
      CHECK(probs[n * Vn + j] ==
            Approx(std::exp(logits[n * Vn + j] - mx) / sum).epsilon(1e-5).margin(1e-12));
      psum += probs[n * Vn + j];
    }
    CHECK(psum == Approx(1.0).epsilon(1e-5));
    const double want = -(logits[n * Vn + targets[n]] - mx - std::log(sum));
    CHECK(losses[n] == Approx(want).epsilon(1e-5));
  }
  CHECK(losses[2] > 55.0f);  // not clipped by p(target) underflowing in float
}

TEST_CASE("cross-entropy rejects a target outside the vocabulary", "[kernels]") {
  std::vector<float> logits(4, 0.0f), probs(4), losses(1), d(4);
  const int32_t bad = 4;
  CHECK_THROWS(cpu::crossentropy_forward(losses.data(), probs.data(), logits.data(), &bad, 1, 4));
  CHECK_THROWS(cpu::crossentropy_backward(d.data(), probs.data(), &bad, 1.0f, 1, 4));
}

TEST_CASE("AdamW steps match a double-precision reference", "[kernels]") {
  const size_t n = 50;
  auto p = random_floats(n, 70), m = random_floats(n, 71, -0.1f, 0.1f),
       v = random_floats(n, 72, 0.0f, 0.01f);
  std::vector<double> pd(p.begin(), p.end()), md(m.begin(), m.end()), vd(v.begin(), v.end());
  cpu::AdamWParams hp;
  hp.lr = 3e-3f;
  hp.weight_decay = 0.1f;
  for (int step = 1; step <= 3; ++step) {
    hp.step = step;
    const auto g = random_floats(n, 73 + step);
    cpu::adamw_update(p.data(), g.data(), m.data(), v.data(), n, hp);
    // Reference: p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p), bias-corrected moments.
    const double b1 = hp.beta1, b2 = hp.beta2;
    for (size_t i = 0; i < n; ++i) {
      md[i] = b1 * md[i] + (1 - b1) * g[i];
      vd[i] = b2 * vd[i] + (1 - b2) * g[i] * static_cast<double>(g[i]);
      const double mhat = md[i] / (1 - std::pow(b1, step));
      const double vhat = vd[i] / (1 - std::pow(b2, step));
      pd[i] -= hp.lr * (mhat / (std::sqrt(vhat) + hp.eps) + hp.weight_decay * pd[i]);
    }
    // Float state drifts from the double one by a few ulp per step.
    expect_close(p, pd, 1e-6, 1e-5, "param after step " + std::to_string(step));
    expect_close(m, md, 1e-7, 1e-5, "exp_avg after step " + std::to_string(step));
    expect_close(v, vd, 1e-9, 1e-5, "exp_avg_sq after step " + std::to_string(step));
  }
}

TEST_CASE("AdamW with zero gradient only applies decoupled weight decay", "[kernels]") {
  std::vector<float> p = {1.0f, -2.0f}, g = {0.0f, 0.0f}, m = {0.0f, 0.0f}, v = {0.0f, 0.0f};
  cpu::AdamWParams hp;
  hp.lr = 0.5f;
  hp.weight_decay = 0.1f;
  cpu::adamw_update(p.data(), g.data(), m.data(), v.data(), 2, hp);
  CHECK(p[0] == Approx(1.0 - 0.5 * 0.1 * 1.0));
  CHECK(p[1] == Approx(-2.0 + 0.5 * 0.1 * 2.0));
}

TEST_CASE("linear backward input and weight accumulate into their buffers", "[kernels]") {
  const int N = 7, IC = 5, OC = 6;
  const auto x = random_floats(N * IC, 80), w = random_floats(OC * IC, 81),
             dout = random_floats(N * OC, 82);
  // Exact expected increments in double.
  std::vector<double> gx(N * IC, 0.0), gw(OC * IC, 0.0), gb(OC, 0.0);
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < OC; ++o) {
      gb[o] += dout[n * OC + o];
      for (int i = 0; i < IC; ++i) {
        gx[n * IC + i] += static_cast<double>(dout[n * OC + o]) * w[o * IC + i];
        gw[o * IC + i] += static_cast<double>(dout[n * OC + o]) * x[n * IC + i];
      }
    }
  const auto dx0 = random_floats(x.size(), 83), dw0 = random_floats(w.size(), 84),
             db0 = random_floats(OC, 85);
  auto dx = dx0, dw = dw0, db = db0;
  for (int calls = 1; calls <= 2; ++calls) {
    cpu::linear_backward_input(dx.data(), dout.data(), w.data(), N, IC, OC);
    cpu::linear_backward_weight(dw.data(), db.data(), dout.data(), x.data(), N, IC, OC);
    auto expect = [&](const std::vector<float>& base, const std::vector<double>& g) {
      std::vector<double> e(base.size());
      for (size_t i = 0; i < e.size(); ++i) e[i] = base[i] + calls * g[i];
      return e;
    };
    const std::string tag = " after " + std::to_string(calls) + " call(s)";
    expect_close(dx, expect(dx0, gx), 1e-5, 1e-5, "dinp" + tag);
    expect_close(dw, expect(dw0, gw), 1e-5, 1e-5, "dweight" + tag);
    expect_close(db, expect(db0, gb), 1e-5, 1e-5, "dbias" + tag);
  }
}

TEST_CASE("linear forward handles empty inner dimension and batches", "[kernels]") {
  std::vector<float> out(6, 9.0f), b = {1.0f, 2.0f, 3.0f};
  cpu::linear_forward(out.data(), nullptr, nullptr, b.data(), 2, 0, 3);
  CHECK(out == std::vector<float>{1, 2, 3, 1, 2, 3});
  cpu::linear_forward(nullptr, nullptr, nullptr, b.data(), 0, 4, 3);  // N = 0: no access
}

TEST_CASE("vector helpers: sum_of_squares, scale, add, residual", "[kernels]") {
  const auto x = random_floats(1001, 90);
  double want = 0;
  for (float f : x) want += static_cast<double>(f) * f;
  CHECK(cpu::sum_of_squares(x.data(), x.size()) == want);  // same order, same bits
  CHECK(cpu::sum_of_squares(x.data(), 0) == 0.0);

  auto y = x;
  cpu::scale_inplace(y.data(), y.size(), 0.25f);
  for (size_t i = 0; i < x.size(); ++i) REQUIRE(y[i] == x[i] * 0.25f);
  const auto z = random_floats(x.size(), 91);
  auto s = x;
  cpu::add_inplace(s.data(), z.data(), s.size());
  std::vector<float> r(x.size());
  cpu::residual_forward(r.data(), x.data(), z.data(), x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    REQUIRE(s[i] == x[i] + z[i]);
    REQUIRE(r[i] == x[i] + z[i]);
  }
}

TEST_CASE("fast_exp is within 2 ulp-ish of exp over the softmax range", "[kernels]") {
  using conveyor::cpu::detail::fast_exp;
  double worst = 0;
  for (float x = -87.0f; x <= 88.0f; x += 0.0137f) {
    const double want = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::fabs(fast_exp(x) - want) / want);
  }
  INFO("worst relative error " << worst);
  CHECK(worst < 3e-7);
  CHECK(fast_exp(0.0f) == 1.0f);
  CHECK(fast_exp(-1000.0f) == 0.0f);
  CHECK(fast_exp(-std::numeric_limits<float>::infinity()) == 0.0f);
  CHECK(std::isfinite(fast_exp(1000.0f)));
  CHECK(std::isnan(fast_exp(std::numeric_limits<float>::quiet_NaN())));
}

TEST_CASE("softmax rows propagate NaN instead of hiding it", "[kernels]") {
  std::vector<float> logits = {0.0f, std::numeric_limits<float>::quiet_NaN(), 1.0f}, probs(3),
                     loss(1);
  const int32_t t = 0;
  cpu::crossentropy_forward(loss.data(), probs.data(), logits.data(), &t, 1, 3);
  CHECK(std::isnan(loss[0]));
}
