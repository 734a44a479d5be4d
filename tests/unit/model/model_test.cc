// The model as a whole: parameter table contract, partition-independent initialisation,
// gradients against finite differences, and chunked execution equal to one chunk.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>

#include "common/error.h"
#include "kernels/cpu/cpu_backend.h"
#include "model/init.h"
#include "model/param_table.h"
#include "model/partition.h"
#include "model/stage_model.h"

using namespace conveyor;
using namespace conveyor::model;

namespace {

ModelConfig tiny() {
  ModelConfig c;
  c.layers = 2;
  c.heads = 2;
  c.dim = 8;
  c.seq = 6;
  c.vocab = 11;
  return c;
}

void fill_batch(int32_t* tokens, int32_t* targets, int n, int vocab, unsigned seed) {
  std::mt19937 rng(seed);
  for (int i = 0; i < n; ++i) {
    tokens[i] = static_cast<int32_t>(rng() % vocab);
    targets[i] = static_cast<int32_t>(rng() % vocab);
  }
}

// Runs forward + backward of one micro-batch through all chunks of `m` (in order, handing
// activations and gradients over locally); returns the loss.
float run_microbatch(StageModel& m, const int32_t* tokens, const int32_t* targets, float scale,
                     bool backward) {
  const auto& cfg = m.config();
  const size_t nc = size_t(cfg.seq) * cfg.dim * 2;  // micro-batch size 2
  std::vector<std::unique_ptr<Slot>> slots;
  for (int c = 0; c < m.num_chunks(); ++c) slots.push_back(m.chunk(c).make_slot());
  std::memcpy(slots.front()->tokens(), tokens, sizeof(int32_t) * 2 * cfg.seq);
  std::memcpy(slots.back()->targets(), targets, sizeof(int32_t) * 2 * cfg.seq);
  for (int c = 0; c < m.num_chunks(); ++c) {
    if (c > 0) std::memcpy(slots[c]->input(), slots[c - 1]->output(), nc * sizeof(float));
    m.chunk(c).forward(*slots[c]);
  }
  if (backward) {
    for (int c = m.num_chunks() - 1; c >= 0; --c) {
      if (c + 1 < m.num_chunks()) {
        std::memcpy(slots[c]->output_grad(), slots[c + 1]->input_grad(), nc * sizeof(float));
      }
      m.chunk(c).backward_input(*slots[c], scale);
      m.chunk(c).backward_weight(*slots[c]);
    }
  }
  return slots.back()->loss();
}

}  // namespace

TEST_CASE("parameter table follows the naming and shape contract", "[model]") {
  ModelConfig c = tiny();
  auto table = parameter_table(c);
  REQUIRE(table.front().name == "wte.weight");
  REQUIRE(table.front().shape == std::vector<int64_t>{11, 8});
  REQUIRE(table[1].name == "wpe.weight");
  REQUIRE(table[1].shape == std::vector<int64_t>{6, 8});
  REQUIRE(table.back().name == "ln_f.bias");
  size_t total = 0;
  bool found_qkv = false;
  for (const auto& p : table) {
    total += p.numel();
    if (p.name == "layers.001.attn.qkv.weight") {
      found_qkv = true;
      REQUIRE(p.shape == std::vector<int64_t>{24, 8});
      REQUIRE(p.decay);
    }
    if (p.name == "layers.000.mlp.proj.weight") REQUIRE(p.shape == std::vector<int64_t>{8, 32});
    if (p.name.ends_with(".bias")) REQUIRE_FALSE(p.decay);
  }
  REQUIRE(found_qkv);
  REQUIRE(total == c.num_parameters());
  size_t non_layer = 0;
  for (const auto& p : table) {
    REQUIRE(p.layer == layer_of(p.name));
    if (p.layer < 0) REQUIRE(std::string(kNonLayerParams.at(non_layer++)) == p.name);
  }
  REQUIRE(non_layer == kNonLayerParams.size());
}

TEST_CASE("parameter names are built and parsed in one place", "[model]") {
  REQUIRE(layer_prefix(7) == "layers.007.");
  REQUIRE(layer_param_name(7, "attn.qkv.weight") == "layers.007.attn.qkv.weight");
  REQUIRE(layer_param_name(123, "ln1.bias") == "layers.123.ln1.bias");
  REQUIRE(layer_of("layers.007.attn.qkv.weight") == 7);
  REQUIRE(layer_of("layers.998.mlp.fc.bias") == 998);
  REQUIRE(layer_of("layers.1234.mlp.fc.bias") == -1);  // past kMaxLayers: no block has it
  REQUIRE(layer_of("layers.012") == 12);
  for (const char* name : kNonLayerParams) REQUIRE(layer_of(name) == -1);
  for (const char* name : {"layers.", "layers.x.ln1.weight", "layers.01x.ln1.weight", "h.1.ln1",
                           "layers007.ln1.weight", ""}) {
    INFO(name);
    REQUIRE(layer_of(name) == -1);
  }
}

TEST_CASE("initialisation depends only on seed and parameter name", "[model]") {
  auto table = parameter_table(tiny());
  const ParamSpec& qkv = table[4];
  std::vector<float> a(qkv.numel()), b(qkv.numel()), other(qkv.numel());
  init_parameter(qkv, 7, a.data());
  init_parameter(qkv, 7, b.data());
  init_parameter(qkv, 8, other.data());
  REQUIRE(a == b);
  REQUIRE(a != other);
  double sum = 0, sq = 0;
  ParamSpec big = {"x.weight", {200, 100}, 0, true, 0.02f, 0};
  std::vector<float> v(big.numel());
  init_parameter(big, 1, v.data());
  for (float x : v) {
    sum += x;
    sq += double(x) * x;
  }
  const double mean = sum / v.size(), stdev = std::sqrt(sq / v.size() - mean * mean);
  REQUIRE(std::abs(mean) < 0.001);
  REQUIRE(std::abs(stdev - 0.02) < 0.001);
}

TEST_CASE("partition errors say how to fix them", "[model]") {
  REQUIRE_THROWS_MATCHES(
      parse_partition("3,3,2", 10, 3), Error, Catch::Matchers::Predicate<Error>([](const Error& e) {
        return e.kind() == ErrorKind::kUsage && e.message().find("sums to 8") != std::string::npos;
      }));
  REQUIRE_THROWS_AS(parse_partition("4,0,4", 8, 3), Error);
  REQUIRE_THROWS_AS(parse_partition("4,4", 8, 3), Error);
  REQUIRE_THROWS_AS(parse_partition("4,x,4", 12, 3), Error);
  REQUIRE_THROWS_AS(default_partition(2, 3), Error);
  REQUIRE(parse_partition("3,3,2,2", 10, 4) == std::vector<int>{3, 3, 2, 2});
  REQUIRE(default_partition(10, 4) == std::vector<int>{3, 3, 2, 2});
}

TEST_CASE("whole-model gradient matches finite differences", "[model]") {
  // Tolerance: central differences of a float32 forward with h = 2e-3 are good to a few
  // 1e-3 absolute on this tiny model; gradients are compared with 3e-3 + 5% relative.
  ModelConfig c = tiny();
  kernels::CpuBackend cpu;
  StageModel m(cpu, c, chunk_specs({2}), 2);
  m.store().initialize(3);
  // Larger weights than GPT-2's init, so gradients are well above the float noise.
  for (float& p : m.store().params()) p *= 3.0f;
  std::vector<int32_t> tokens(2 * c.seq), targets(2 * c.seq);
  fill_batch(tokens.data(), targets.data(), 2 * c.seq, c.vocab, 11);
  const float scale = 1.0f / (2 * c.seq);
  m.zero_grads();
  run_microbatch(m, tokens.data(), targets.data(), scale, true);
  // Tie: the store's wte gradient is the embedding's share; add the head's.
  auto& head = m.head_wte_grad();
  float* wte_grad = m.store().grad(kWteWeight);
  for (size_t i = 0; i < head.size(); ++i) wte_grad[i] += head.data()[i];

  std::mt19937 rng(5);
  int checked = 0;
  for (size_t pi = 0; pi < m.store().specs().size(); ++pi) {
    auto params = m.store().param(static_cast<int>(pi));
    auto grads = m.store().grad(static_cast<int>(pi));
    for (int k = 0; k < 3; ++k) {
      const size_t i = rng() % params.size();
      const float saved = params[i];
      const float h = 2e-3f;
      params[i] = saved + h;
      const double up = run_microbatch(m, tokens.data(), targets.data(), scale, false);
      params[i] = saved - h;
      const double down = run_microbatch(m, tokens.data(), targets.data(), scale, false);
      params[i] = saved;
      const double numeric = (up - down) / (2.0 * h);
      INFO(m.store().specs()[pi].name << "[" << i << "] analytic " << grads[i] << " numeric "
                                      << numeric);
      REQUIRE(std::abs(grads[i] - numeric) <= 3e-3 + 0.05 * std::abs(numeric));
      ++checked;
    }
  }
  REQUIRE(checked == 3 * static_cast<int>(m.store().specs().size()));
}

TEST_CASE("running the model as several chunks gives the same bits as one chunk", "[model]") {
  ModelConfig c = tiny();
  c.layers = 3;
  kernels::CpuBackend cpu;
  StageModel whole(cpu, c, chunk_specs({3}), 2);
  StageModel split(cpu, c, chunk_specs({1, 2}), 2);
  whole.store().initialize(9);
  split.store().initialize(9);
  REQUIRE(std::equal(whole.store().params().begin(), whole.store().params().end(),
                     split.store().params().begin()));
  std::vector<int32_t> tokens(2 * c.seq), targets(2 * c.seq);
  whole.zero_grads();
  split.zero_grads();
  for (int mb = 0; mb < 3; ++mb) {
    fill_batch(tokens.data(), targets.data(), 2 * c.seq, c.vocab, 100 + mb);
    float a = run_microbatch(whole, tokens.data(), targets.data(), 0.01f, true);
    float b = run_microbatch(split, tokens.data(), targets.data(), 0.01f, true);
    REQUIRE(std::memcmp(&a, &b, sizeof a) == 0);
  }
  auto g1 = whole.store().grads();
  auto g2 = split.store().grads();
  REQUIRE(std::memcmp(g1.data(), g2.data(), g1.size() * sizeof(float)) == 0);
  REQUIRE(std::memcmp(whole.head_wte_grad().data(), split.head_wte_grad().data(),
                      whole.head_wte_grad().bytes()) == 0);
  // The per-parameter sums of squares agree too (the norm is partition-independent).
  REQUIRE(whole.grad_sum_squares() == split.grad_sum_squares());
}
