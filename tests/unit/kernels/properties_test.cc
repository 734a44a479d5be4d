// Properties of the ops that users rely on beyond "the gradient is right", on every backend
// through the kernels::Backend interface (see backend_test_util.h): causality, the
// cross-entropy definition and its target check, AdamW's update rule, accumulate semantics of
// the split linear backward, and the exactness of the sums and element-wise helpers.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/backend.h"
#include "tests/unit/kernels/backend_test_util.h"
#include "tests/unit/kernels/kernel_test_util.h"

using conveyor::kernels::AdamWParams;
using namespace conveyor::kernels_test;

BACKEND_TEST_CASE("attention is causal: a later token never changes earlier outputs", "[kernels]") {
  const int B = 2, T = 9, C = 8, NH = 2;
  const size_t row = 3 * C;
  const auto qkv = random_floats(B * T * row, 60);
  auto qkv_b = upload(backend, qkv);
  auto out_b = backend.alloc<float>(B * T * C), att_b = backend.alloc<float>(B * NH * T * T);
  backend.attention_forward(out_b.data(), att_b.data(), qkv_b.data(), B, T, C, NH);
  const auto out = download(backend, out_b), att = download(backend, att_b);
  for (int changed = 1; changed < T; ++changed) {
    auto qkv2 = qkv;
    for (int b = 0; b < B; ++b)  // new q, k and v for every position >= changed
      for (size_t i = changed * row; i < T * row; ++i) qkv2[b * T * row + i] += 5.0f;
    auto qkv2_b = upload(backend, qkv2);
    backend.attention_forward(out_b.data(), att_b.data(), qkv2_b.data(), B, T, C, NH);
    const auto out2 = download(backend, out_b);
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

BACKEND_TEST_CASE("attention rejects a width the heads do not divide", "[kernels]") {
  const int B = 1, T = 2, C = 6, NH = 4;
  auto qkv_b = backend.alloc<float>(B * T * 3 * C), out_b = backend.alloc<float>(B * T * C),
       att_b = backend.alloc<float>(B * NH * T * T);
  CHECK_THROWS_AS(backend.attention_forward(out_b.data(), att_b.data(), qkv_b.data(), B, T, C, NH),
                  conveyor::Error);
}

BACKEND_TEST_CASE("cross-entropy is -log of the softmax probability of the target", "[kernels]") {
  const int N = 5, Vn = 300;
  auto logits = random_floats(N * Vn, 61, -4, 4);
  logits[2 * Vn + 7] = 60.0f;  // row 2: a confident wrong answer, p(target) ~ e^-60
  const std::vector<int32_t> targets = {0, 299, 8, 150, 3};
  auto logits_b = upload(backend, logits);
  auto targets_b = upload(backend, targets);
  auto losses_b = backend.alloc<float>(N), probs_b = backend.alloc<float>(N * Vn);
  backend.crossentropy_forward(losses_b.data(), probs_b.data(), logits_b.data(), targets_b.data(),
                               N, Vn);
  const auto losses = download(backend, losses_b), probs = download(backend, probs_b);
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

// A backend may report it from the call (cpu) or at its next wait for the device (cuda, which
// checks on the device without waiting): either way before the caller sees any result.
BACKEND_TEST_CASE("cross-entropy rejects a target outside the vocabulary before writing",
                  "[kernels]") {
  for (int32_t bad : {4, -1}) {
    DYNAMIC_SECTION("target " << bad) {
      const std::vector<int32_t> targets = {1, bad};
      auto targets_b = upload(backend, targets);
      auto logits_b = upload(backend, random_floats(8, 62));
      auto probs_b = upload(backend, std::vector<float>(8, 5.0f));
      auto losses_b = upload(backend, std::vector<float>(2, 5.0f));
      auto d_b = upload(backend, std::vector<float>(8, 5.0f));
      try {
        backend.crossentropy_forward(losses_b.data(), probs_b.data(), logits_b.data(),
                                     targets_b.data(), 2, 4);
        backend.synchronize();
        FAIL("crossentropy_forward accepted target " << bad);
      } catch (const conveyor::Error& e) {
        CHECK(e.kind() == conveyor::ErrorKind::kRuntime);
        CHECK_THAT(e.what(), Catch::Contains("row 1"));
      }
      try {
        backend.crossentropy_backward(d_b.data(), probs_b.data(), targets_b.data(), 1.0f, 2, 4);
        backend.synchronize();
        FAIL("crossentropy_backward accepted target " << bad);
      } catch (const conveyor::Error& e) {
        CHECK(e.kind() == conveyor::ErrorKind::kRuntime);
        CHECK_THAT(e.what(), Catch::Contains("row 1"));
      }
      CHECK(download(backend, losses_b) == std::vector<float>(2, 5.0f));
      CHECK(download(backend, probs_b) == std::vector<float>(8, 5.0f));
      CHECK(download(backend, d_b) == std::vector<float>(8, 5.0f));
    }
  }
}

BACKEND_TEST_CASE("softmax rows propagate NaN instead of hiding it", "[kernels]") {
  auto logits_b =
      upload(backend, std::vector<float>{0.0f, std::numeric_limits<float>::quiet_NaN(), 1.0f});
  auto targets_b = upload(backend, std::vector<int32_t>{0});
  auto probs_b = backend.alloc<float>(3), loss_b = backend.alloc<float>(1);
  backend.crossentropy_forward(loss_b.data(), probs_b.data(), logits_b.data(), targets_b.data(), 1,
                               3);
  CHECK(std::isnan(download(backend, loss_b)[0]));
}

BACKEND_TEST_CASE("AdamW steps match a double-precision reference", "[kernels]") {
  const size_t n = 50;
  const auto p0 = random_floats(n, 70), m0 = random_floats(n, 71, -0.1f, 0.1f),
             v0 = random_floats(n, 72, 0.0f, 0.01f);
  auto p_b = upload(backend, p0), m_b = upload(backend, m0), v_b = upload(backend, v0);
  std::vector<double> pd(p0.begin(), p0.end()), md(m0.begin(), m0.end()), vd(v0.begin(), v0.end());
  AdamWParams hp;
  hp.lr = 3e-3f;
  hp.weight_decay = 0.1f;
  for (int step = 1; step <= 3; ++step) {
    hp.step = step;
    const auto g = random_floats(n, 73 + step);
    auto g_b = upload(backend, g);
    backend.adamw_update(p_b.data(), g_b.data(), m_b.data(), v_b.data(), n, hp);
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
    expect_close(download(backend, p_b), pd, 1e-6, 1e-5,
                 "param after step " + std::to_string(step));
    expect_close(download(backend, m_b), md, 1e-7, 1e-5,
                 "exp_avg after step " + std::to_string(step));
    expect_close(download(backend, v_b), vd, 1e-9, 1e-5,
                 "exp_avg_sq after step " + std::to_string(step));
  }
}

BACKEND_TEST_CASE("AdamW with zero gradient only applies decoupled weight decay", "[kernels]") {
  auto p_b = upload(backend, std::vector<float>{1.0f, -2.0f});
  auto g_b = backend.alloc<float>(2), m_b = backend.alloc<float>(2), v_b = backend.alloc<float>(2);
  AdamWParams hp;
  hp.lr = 0.5f;
  hp.weight_decay = 0.1f;
  backend.adamw_update(p_b.data(), g_b.data(), m_b.data(), v_b.data(), 2, hp);
  const auto p = download(backend, p_b);
  CHECK(p[0] == Approx(1.0 - 0.5 * 0.1 * 1.0));
  CHECK(p[1] == Approx(-2.0 + 0.5 * 0.1 * 2.0));
}

BACKEND_TEST_CASE("linear backward input and weight accumulate into their buffers", "[kernels]") {
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
  auto x_b = upload(backend, x), w_b = upload(backend, w), dout_b = upload(backend, dout);
  auto dx_b = upload(backend, dx0), dw_b = upload(backend, dw0), db_b = upload(backend, db0);
  for (int calls = 1; calls <= 2; ++calls) {
    backend.linear_backward_input(dx_b.data(), dout_b.data(), w_b.data(), N, IC, OC);
    backend.linear_backward_weight(dw_b.data(), db_b.data(), dout_b.data(), x_b.data(), N, IC, OC);
    auto expect = [&](const std::vector<float>& base, const std::vector<double>& g) {
      std::vector<double> e(base.size());
      for (size_t i = 0; i < e.size(); ++i) e[i] = base[i] + calls * g[i];
      return e;
    };
    const std::string tag = " after " + std::to_string(calls) + " call(s)";
    expect_close(download(backend, dx_b), expect(dx0, gx), 1e-5, 1e-5, "dinp" + tag);
    expect_close(download(backend, dw_b), expect(dw0, gw), 1e-5, 1e-5, "dweight" + tag);
    expect_close(download(backend, db_b), expect(db0, gb), 1e-5, 1e-5, "dbias" + tag);
  }
}

BACKEND_TEST_CASE("linear forward handles empty inner dimension and batches", "[kernels]") {
  auto out_b = upload(backend, std::vector<float>(6, 9.0f));
  auto b_b = upload(backend, std::vector<float>{1.0f, 2.0f, 3.0f});
  backend.linear_forward(out_b.data(), nullptr, nullptr, b_b.data(), 2, 0, 3);
  CHECK(download(backend, out_b) == std::vector<float>{1, 2, 3, 1, 2, 3});
  backend.linear_forward(nullptr, nullptr, nullptr, b_b.data(), 0, 4, 3);  // N = 0: no access
  backend.synchronize();
}

BACKEND_TEST_CASE("sum and sum_of_squares are double sums in index order", "[kernels]") {
  const auto x = random_floats(1001, 90);
  auto x_b = upload(backend, x);
  double want_sum = 0, want_squares = 0;
  for (float f : x) {
    want_sum += f;
    want_squares += static_cast<double>(f) * f;
  }
  CHECK(backend.sum(x_b.data(), x.size()) == want_sum);  // same order, same bits
  CHECK(backend.sum_of_squares(x_b.data(), x.size()) == want_squares);
  CHECK(backend.sum(x_b.data(), 0) == 0.0);
  CHECK(backend.sum_of_squares(x_b.data(), 0) == 0.0);
}

BACKEND_TEST_CASE("sums_of_squares gives each tensor sum_of_squares' bits in one call",
                  "[kernels]") {
  // Sizes around the CUDA backend's 4096-element chunks, an empty tensor among them.
  const std::vector<size_t> sizes = {1, 0, 4096, 4097, 10000, 3};
  std::vector<conveyor::kernels::Buffer<float>> tensors;
  std::vector<const float*> pointers;
  for (size_t i = 0; i < sizes.size(); ++i) {
    tensors.push_back(upload(backend, random_floats(std::max<size_t>(sizes[i], 1), 200 + i)));
    pointers.push_back(tensors.back().data());
  }
  std::vector<double> got(sizes.size(), -1.0);
  backend.sums_of_squares(got.data(), pointers.data(), sizes.data(), sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    INFO("tensor " << i << " of " << sizes[i] << " elements");
    CHECK(got[i] == backend.sum_of_squares(pointers[i], sizes[i]));
  }
  backend.sums_of_squares(nullptr, nullptr, nullptr, 0);  // nothing to do
}

BACKEND_TEST_CASE("scale, add and residual are exact float arithmetic", "[kernels]") {
  const auto x = random_floats(1001, 90), z = random_floats(1001, 91);
  auto x_b = upload(backend, x), z_b = upload(backend, z);
  auto y_b = upload(backend, x);
  backend.scale_inplace(y_b.data(), x.size(), 0.25f);
  auto s_b = upload(backend, x);
  backend.add_inplace(s_b.data(), z_b.data(), x.size());
  auto r_b = backend.alloc<float>(x.size());
  backend.residual_forward(r_b.data(), x_b.data(), z_b.data(), x.size());
  const auto y = download(backend, y_b), s = download(backend, s_b), r = download(backend, r_b);
  for (size_t i = 0; i < x.size(); ++i) {
    REQUIRE(y[i] == x[i] * 0.25f);
    REQUIRE(s[i] == x[i] + z[i]);
    REQUIRE(r[i] == x[i] + z[i]);
  }
}
