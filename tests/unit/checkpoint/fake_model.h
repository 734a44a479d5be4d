// A tiny fake pipeline model for checkpoint tests: named tensors split into stages the way
// the trainer does it (stage 0: embeddings; blocks spread contiguously; last stage: ln_f and
// a copy of the tied wte). Every value is a pure function of (name, group, index), so any
// stage layout of the same model holds the same numbers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "model/param_table.h"

namespace conveyor::checkpoint::testing {

struct FakeTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> param, exp_avg, exp_avg_sq;
};

inline constexpr int kFakeLayers = 4;

// The value stored for element i of tensor `name`, group 0 (params), 1 (exp_avg), 2 (exp_avg_sq),
// at training step `step`.
inline float fake_value(const std::string& name, int group, size_t i, int64_t step) {
  uint32_t h = static_cast<uint32_t>(std::hash<std::string>{}(name));
  return static_cast<float>(h % 1000) * 0.001f + static_cast<float>(i) * 0.25f +
         static_cast<float>(group) * 100.0f + static_cast<float>(step) * 0.5f;
}

inline FakeTensor make_tensor(const std::string& name, std::vector<int64_t> shape, int64_t step) {
  FakeTensor t{name, shape, {}, {}, {}};
  size_t n = element_count(shape);
  for (size_t i = 0; i < n; ++i) {
    t.param.push_back(fake_value(name, 0, i, step));
    t.exp_avg.push_back(fake_value(name, 1, i, step));
    t.exp_avg_sq.push_back(fake_value(name, 2, i, step));
  }
  return t;
}

// The tensors of `stage` out of `num_stages` (num_stages divides kFakeLayers).
inline std::vector<FakeTensor> fake_stage(int stage, int num_stages, int64_t step) {
  std::vector<FakeTensor> out;
  if (stage == 0) {
    out.push_back(make_tensor(model::kWteWeight, {16, 8}, step));
    out.push_back(make_tensor(model::kWpeWeight, {4, 8}, step));
  }
  int per = kFakeLayers / num_stages;
  for (int l = stage * per; l < (stage + 1) * per; ++l) {
    out.push_back(make_tensor(model::layer_param_name(l, "fc.weight"), {8, 8}, step));
    out.push_back(make_tensor(model::layer_param_name(l, "fc.bias"), {8}, step));
  }
  if (stage == num_stages - 1) {
    out.push_back(make_tensor(model::kLnFWeight, {8}, step));
    if (num_stages > 1) out.push_back(make_tensor(model::kWteWeight, {16, 8}, step));  // tied copy
  }
  return out;
}

inline ShardContents contents_of(const std::vector<FakeTensor>& tensors, int shard, int num_shards,
                                 int64_t step) {
  ShardContents c;
  c.step = step;
  c.shard = shard;
  c.num_shards = num_shards;
  for (const auto& t : tensors) {
    c.params.push_back({t.name, t.shape, t.param.data()});
    c.exp_avg.push_back({t.name, t.shape, t.exp_avg.data()});
    c.exp_avg_sq.push_back({t.name, t.shape, t.exp_avg_sq.data()});
  }
  c.state = {{"step", step}, {"sampler", {{"position", step * 4}}}, {"seed", 1234}};
  return c;
}

// Writes every stage's shard (as the stage processes would, one replica: shard == stage),
// without committing.
inline void write_all_shards(const std::filesystem::path& root, int64_t step, int num_stages) {
  auto tmp = begin_step(root, step);
  for (int s = 0; s < num_stages; ++s) {
    auto tensors = fake_stage(s, num_stages, step);
    write_shard(tmp, contents_of(tensors, s, num_stages, step));
  }
}

inline const nlohmann::json& fake_config() {
  static const nlohmann::json config = {{"layers", kFakeLayers}, {"dim", 8}, {"vocab", 16}};
  return config;
}

// Writes and commits one step.
inline void save_step(const std::filesystem::path& root, int64_t step, int num_stages,
                      int keep = 0) {
  write_all_shards(root, step, num_stages);
  commit_step(root, step, num_stages, fake_config(), "fake-fingerprint", keep);
}

}  // namespace conveyor::checkpoint::testing
