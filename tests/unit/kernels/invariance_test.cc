// Two properties the pipeline's bit-identity rests on, on every backend (see
// backend_test_util.h; on a GPU backend these are the checks that matter, since its kernels
// pick launch shapes and cuBLAS algorithms at run time):
// - run to run: the same inputs through every op twice give the same bits;
// - batch position: a sequence's per-row results (every op but the weight gradients, which sum
//   over the batch) do not depend on where in the micro-batch it sits, so how the data is
//   dealt into micro-batches cannot change a sequence's activations.
// Shapes are large enough for several cuBLAS tiles and thread blocks per op.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "tests/unit/kernels/backend_test_util.h"
#include "tests/unit/kernels/kernel_test_util.h"

using namespace conveyor::kernels;
using namespace conveyor::kernels_test;

namespace {

constexpr int kT = 64, kC = 96, kNH = 4, kV = 517;

struct Outputs {
  std::vector<std::string> names;
  std::vector<std::vector<float>> values;  // each laid out [B, ...]: B equal slices
};

// One forward and backward pass through every op for the sequences `seqs` (token ids, kT
// each), batched in that order. Weights and the upstream gradients are fixed per sequence, so
// a sequence sees the same inputs wherever it sits.
Outputs run_pass(Backend& be, const std::vector<std::vector<int32_t>>& seqs) {
  const int B = static_cast<int>(seqs.size()), N = B * kT, C = kC;
  std::vector<int32_t> tokens, targets;
  for (const auto& s : seqs) {
    tokens.insert(tokens.end(), s.begin(), s.end());
    for (int t = 0; t < kT; ++t) targets.push_back(s[(t + 1) % kT]);
  }
  auto per_seq = [&](size_t per_row, uint32_t seed) {  // upstream gradients: by sequence id
    std::vector<float> v;
    for (const auto& s : seqs) {
      const auto part = random_floats(per_row * kT, seed + static_cast<uint32_t>(s[0]));
      v.insert(v.end(), part.begin(), part.end());
    }
    return v;
  };
  Outputs o;
  auto keep = [&](const char* name, const Buffer<float>& b) {
    o.names.push_back(name);
    o.values.push_back(download(be, b));
  };
  auto tok = upload(be, tokens), tgt = upload(be, targets);
  auto wte = upload(be, random_floats(kV * C, 1)), wpe = upload(be, random_floats(kT * C, 2));
  auto lnw = upload(be, random_floats(C, 3, 0.5f, 1.5f)), lnb = upload(be, random_floats(C, 4));
  auto wqkv = upload(be, random_floats(3 * C * C, 5, -0.2f, 0.2f)),
       bqkv = upload(be, random_floats(3 * C, 6));

  auto emb = be.alloc<float>(N * C);
  be.embedding_forward(emb.data(), tok.data(), wte.data(), wpe.data(), B, kT, C);
  keep("embedding", emb);
  auto ln = be.alloc<float>(N * C), mean = be.alloc<float>(N), rstd = be.alloc<float>(N);
  be.layernorm_forward(ln.data(), mean.data(), rstd.data(), emb.data(), lnw.data(), lnb.data(), N,
                       C);
  keep("layernorm", ln);
  auto qkv = be.alloc<float>(N * 3 * C);
  be.linear_forward(qkv.data(), ln.data(), wqkv.data(), bqkv.data(), N, C, 3 * C);
  keep("linear", qkv);
  auto att_out = be.alloc<float>(N * C), att = be.alloc<float>(B * kNH * kT * kT);
  be.attention_forward(att_out.data(), att.data(), qkv.data(), B, kT, C, kNH);
  keep("attention out", att_out);
  keep("attention probabilities", att);
  auto g = be.alloc<float>(N * C), res = be.alloc<float>(N * C);
  be.gelu_forward(g.data(), att_out.data(), N * C);
  be.residual_forward(res.data(), g.data(), emb.data(), N * C);
  keep("gelu + residual", res);
  auto logits = be.alloc<float>(N * kV);
  be.linear_forward(logits.data(), res.data(), wte.data(), nullptr, N, C, kV);
  keep("logits", logits);
  auto losses = be.alloc<float>(N), probs = be.alloc<float>(N * kV);
  be.crossentropy_forward(losses.data(), probs.data(), logits.data(), tgt.data(), N, kV);
  keep("losses", losses);
  keep("probabilities", probs);

  auto dlogits = be.alloc<float>(N * kV);
  be.crossentropy_backward(dlogits.data(), probs.data(), tgt.data(), 1.0f / N, N, kV);
  keep("dlogits", dlogits);
  auto dres = be.alloc<float>(N * C);
  be.linear_backward_input(dres.data(), dlogits.data(), wte.data(), N, C, kV);
  keep("linear backward input", dres);
  auto dg = be.alloc<float>(N * C);
  be.gelu_backward(dg.data(), att_out.data(), dres.data(), N * C);
  keep("gelu backward", dg);
  auto dqkv = be.alloc<float>(N * 3 * C), scratch = be.alloc<float>(B * kNH * kT * kT);
  be.attention_backward(dqkv.data(), scratch.data(), dg.data(), qkv.data(), att.data(), B, kT, C,
                        kNH);
  keep("attention backward", dqkv);
  auto dqkv_up = upload(be, per_seq(3 * C, 100));
  auto dln = be.alloc<float>(N * C);
  be.linear_backward_input(dln.data(), dqkv_up.data(), wqkv.data(), N, C, 3 * C);
  auto demb = be.alloc<float>(N * C);
  be.layernorm_backward_input(demb.data(), dln.data(), emb.data(), lnw.data(), mean.data(),
                              rstd.data(), N, C);
  keep("layernorm backward input", demb);
  return o;
}

std::vector<int32_t> sequence(uint32_t id) {
  std::vector<int32_t> s(kT);
  for (int t = 0; t < kT; ++t) s[t] = static_cast<int32_t>((id * 131 + t * 17 + t * t) % kV);
  s[0] = static_cast<int32_t>(id);  // distinct first tokens name the sequences
  return s;
}

}  // namespace

BACKEND_TEST_CASE("every op gives the same bits when run twice", "[kernels]") {
  const std::vector<std::vector<int32_t>> seqs = {sequence(1), sequence(2), sequence(3)};
  const Outputs a = run_pass(backend, seqs), b = run_pass(backend, seqs);
  REQUIRE(a.values.size() == b.values.size());
  for (size_t i = 0; i < a.values.size(); ++i)
    expect_same_bits(b.values[i], a.values[i], a.names[i] + ", second run");

  // The weight-gradient ops too (not per sequence, so not in run_pass's batch check).
  auto wgrads = [&] {
    const int N = 3 * kT, IC = kC, OC = 3 * kC;
    auto x = upload(backend, random_floats(N * IC, 7)),
         d = upload(backend, random_floats(N * OC, 8));
    auto dw = backend.alloc<float>(OC * IC), db = backend.alloc<float>(OC);
    backend.linear_backward_weight(dw.data(), db.data(), d.data(), x.data(), N, IC, OC);
    auto mean = upload(backend, random_floats(N, 9)), rstd = upload(backend, random_floats(N, 10));
    auto lw = backend.alloc<float>(IC), lb = backend.alloc<float>(IC);
    backend.layernorm_backward_weight(lw.data(), lb.data(), x.data(), x.data(), mean.data(),
                                      rstd.data(), N, IC);
    auto tok = upload(backend, sequence(4));
    auto dwte = backend.alloc<float>(kV * IC), dwpe = backend.alloc<float>(kT * IC);
    backend.embedding_backward(dwte.data(), dwpe.data(), x.data(), tok.data(), 1, kT, IC);
    const double norm = backend.sum_of_squares(dw.data(), dw.size());
    return std::vector<std::vector<float>>{download(backend, dw),     download(backend, db),
                                           download(backend, lw),     download(backend, lb),
                                           download(backend, dwte),   download(backend, dwpe),
                                           {static_cast<float>(norm)}};
  };
  const auto w1 = wgrads(), w2 = wgrads();
  for (size_t i = 0; i < w1.size(); ++i)
    expect_same_bits(w2[i], w1[i], "weight gradient #" + std::to_string(i) + ", second run");
}

BACKEND_TEST_CASE("a sequence's results do not depend on its place in the batch", "[kernels]") {
  const std::vector<uint32_t> ids = {1, 2, 3};
  const std::vector<size_t> order = {2, 0, 1};  // the same sequences, rotated
  std::vector<std::vector<int32_t>> first, second;
  for (uint32_t id : ids) first.push_back(sequence(id));
  for (size_t k : order) second.push_back(sequence(ids[k]));
  const Outputs a = run_pass(backend, first), b = run_pass(backend, second);
  REQUIRE(a.values.size() == b.values.size());
  const size_t B = ids.size();
  for (size_t i = 0; i < a.values.size(); ++i) {
    const size_t slice = a.values[i].size() / B;
    for (size_t pos = 0; pos < B; ++pos) {
      const size_t k = order[pos];  // sequence k of `first` sits at `pos` in `second`
      const std::vector<float> want(a.values[i].begin() + k * slice,
                                    a.values[i].begin() + (k + 1) * slice);
      const std::vector<float> got(b.values[i].begin() + pos * slice,
                                   b.values[i].begin() + (pos + 1) * slice);
      expect_same_bits(got, want,
                       a.names[i] + ": sequence " + std::to_string(k) + " moved to position " +
                           std::to_string(pos));
    }
  }
}
