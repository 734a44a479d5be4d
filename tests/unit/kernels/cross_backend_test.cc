// Every backend other than cpu gives the same bits as the cpu backend on every op, forward
// and backward, from the same inputs. Registered once per runnable backend other than cpu
// (see backend_test_util.h), so with the cpu backend alone it does not exist: nothing is
// compared and nothing is reported as passing.
//
// Each op's own correctness is checked on every backend against the double references in
// gradients_test.cc and properties_test.cc; this case is what makes a run on another device
// give the same losses and weights as a run on the CPU.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "kernels/backend.h"
#include "tests/unit/kernels/backend_test_util.h"
#include "tests/unit/kernels/kernel_test_util.h"

using namespace conveyor::kernels;
using namespace conveyor::kernels_test;

namespace {

using Outputs = std::vector<std::pair<std::string, std::vector<float>>>;

// Every op once, on small shapes with tails, each output read back under the op's name.
// Backward outputs start non-zero, so the accumulate (+=) is compared too.
Outputs run_every_op(Backend& be, std::vector<double>& sums) {
  Outputs outs;
  auto keep = [&](const char* name, const Buffer<float>& buf) {
    outs.emplace_back(name, download(be, buf));
  };
  const int B = 2, T = 7, C = 12, NH = 3, Vocab = 19, N = B * T;

  const std::vector<int32_t> tokens = {3, 1, 3, 18, 0, 2, 2, 5, 3, 1, 7, 7, 11, 0};
  auto tok = upload(be, tokens);
  auto wte = upload(be, random_floats(Vocab * C, 200)), wpe = upload(be, random_floats(T * C, 201));
  auto emb = be.alloc<float>(N * C);
  be.embedding_forward(emb.data(), tok.data(), wte.data(), wpe.data(), B, T, C);
  keep("embedding_forward out", emb);
  auto dwte = upload(be, random_floats(Vocab * C, 202)),
       dwpe = upload(be, random_floats(T * C, 203));
  auto demb = upload(be, random_floats(N * C, 204));
  be.embedding_backward(dwte.data(), dwpe.data(), demb.data(), tok.data(), B, T, C);
  keep("embedding_backward dwte", dwte);
  keep("embedding_backward dwpe", dwpe);

  auto lnw = upload(be, random_floats(C, 205, 0.5f, 1.5f)), lnb = upload(be, random_floats(C, 206));
  auto ln = be.alloc<float>(N * C), mean = be.alloc<float>(N), rstd = be.alloc<float>(N);
  be.layernorm_forward(ln.data(), mean.data(), rstd.data(), emb.data(), lnw.data(), lnb.data(), N,
                       C);
  keep("layernorm_forward out", ln);
  keep("layernorm_forward mean", mean);
  keep("layernorm_forward rstd", rstd);
  auto dln = upload(be, random_floats(N * C, 207)), dx = upload(be, random_floats(N * C, 208));
  auto dlnw = upload(be, random_floats(C, 209)), dlnb = upload(be, random_floats(C, 210));
  be.layernorm_backward_input(dx.data(), dln.data(), emb.data(), lnw.data(), mean.data(),
                              rstd.data(), N, C);
  be.layernorm_backward_weight(dlnw.data(), dlnb.data(), dln.data(), emb.data(), mean.data(),
                               rstd.data(), N, C);
  keep("layernorm_backward_input dinp", dx);
  keep("layernorm_backward_weight dweight", dlnw);
  keep("layernorm_backward_weight dbias", dlnb);

  auto w = upload(be, random_floats(3 * C * C, 211)), b = upload(be, random_floats(3 * C, 212));
  auto qkv = be.alloc<float>(N * 3 * C), qkv_nobias = be.alloc<float>(N * 3 * C);
  be.linear_forward(qkv.data(), ln.data(), w.data(), b.data(), N, C, 3 * C);
  be.linear_forward(qkv_nobias.data(), ln.data(), w.data(), nullptr, N, C, 3 * C);
  keep("linear_forward out", qkv);
  keep("linear_forward out without bias", qkv_nobias);
  auto dqkv_in = upload(be, random_floats(N * 3 * C, 213));
  auto dlin = upload(be, random_floats(N * C, 214)), dw = upload(be, random_floats(3 * C * C, 215)),
       db = upload(be, random_floats(3 * C, 216)), dw2 = upload(be, random_floats(3 * C * C, 217));
  be.linear_backward_input(dlin.data(), dqkv_in.data(), w.data(), N, C, 3 * C);
  be.linear_backward_weight(dw.data(), db.data(), dqkv_in.data(), ln.data(), N, C, 3 * C);
  be.linear_backward_weight(dw2.data(), nullptr, dqkv_in.data(), ln.data(), N, C, 3 * C);
  keep("linear_backward_input dinp", dlin);
  keep("linear_backward_weight dweight", dw);
  keep("linear_backward_weight dbias", db);
  keep("linear_backward_weight dweight without bias", dw2);

  auto att_out = be.alloc<float>(N * C), att = be.alloc<float>(B * NH * T * T);
  be.attention_forward(att_out.data(), att.data(), qkv.data(), B, T, C, NH);
  keep("attention_forward out", att_out);
  keep("attention_forward att", att);
  auto datt_out = upload(be, random_floats(N * C, 218)),
       dqkv = upload(be, random_floats(N * 3 * C, 219));
  auto scratch = be.alloc<float>(B * NH * T * T);
  be.attention_backward(dqkv.data(), scratch.data(), datt_out.data(), qkv.data(), att.data(), B, T,
                        C, NH);
  keep("attention_backward dqkv", dqkv);

  auto g = be.alloc<float>(N * C), dg = upload(be, random_floats(N * C, 220));
  be.gelu_forward(g.data(), att_out.data(), N * C);
  be.gelu_backward(dg.data(), att_out.data(), datt_out.data(), N * C);
  keep("gelu_forward out", g);
  keep("gelu_backward dinp", dg);
  auto res = be.alloc<float>(N * C);
  be.residual_forward(res.data(), g.data(), emb.data(), N * C);
  keep("residual_forward out", res);

  auto logits = be.alloc<float>(N * Vocab);
  be.linear_forward(logits.data(), res.data(), wte.data(), nullptr, N, C, Vocab);
  std::vector<int32_t> targets(N);
  for (int n = 0; n < N; ++n) targets[n] = (n * 5 + 3) % Vocab;
  auto tgt = upload(be, targets);
  auto losses = be.alloc<float>(N), probs = be.alloc<float>(N * Vocab);
  be.crossentropy_forward(losses.data(), probs.data(), logits.data(), tgt.data(), N, Vocab);
  keep("crossentropy_forward losses", losses);
  keep("crossentropy_forward probs", probs);
  auto dlogits = upload(be, random_floats(N * Vocab, 221));
  be.crossentropy_backward(dlogits.data(), probs.data(), tgt.data(), 1.0f / N, N, Vocab);
  keep("crossentropy_backward dlogits", dlogits);
  sums.push_back(be.sum(losses.data(), N));

  const size_t np = 3 * C * C;
  auto p = upload(be, random_floats(np, 222)), m = upload(be, random_floats(np, 223, -0.1f, 0.1f)),
       v = upload(be, random_floats(np, 224, 0.0f, 0.01f));
  AdamWParams hp;
  hp.lr = 3e-3f;
  hp.weight_decay = 0.1f;
  hp.step = 2;
  be.adamw_update(p.data(), dw.data(), m.data(), v.data(), np, hp);
  keep("adamw_update param", p);
  keep("adamw_update exp_avg", m);
  keep("adamw_update exp_avg_sq", v);
  sums.push_back(be.sum_of_squares(dw.data(), np));
  be.scale_inplace(dw.data(), np, 0.37f);
  keep("scale_inplace x", dw);
  be.add_inplace(dw.data(), dw2.data(), np);
  keep("add_inplace x", dw);
  return outs;
}

}  // namespace

CROSS_BACKEND_TEST_CASE("every op gives the same bits as the cpu backend", "[kernels]") {
  std::vector<double> cpu_sums, sums;
  const Outputs want = run_every_op(cpu, cpu_sums);
  const Outputs got = run_every_op(backend, sums);
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    REQUIRE(got[i].first == want[i].first);
    expect_same_bits(got[i].second, want[i].second, got[i].first);
  }
  expect_same_bits(sums, cpu_sums, "sum of the losses, sum_of_squares of dweight");
}
