// The manifest's layer -> shard map reads layer numbers out of parameter names. checkpoint/
// does not depend on model/, so it has its own copy of that one parse; this test keeps it in
// step with the grammar's owner, model::layer_of (model/param_table.h), on the real names.
#include <catch2/catch.hpp>

#include "checkpoint/manifest.h"
#include "model/param_table.h"

using namespace conveyor;

TEST_CASE("manifest layer_shards agree with model::layer_of on the real parameter names",
          "[checkpoint]") {
  model::ModelConfig config;
  config.layers = 12;
  const auto table = model::parameter_table(config);

  // Two stages: layers 0-4 (with the embeddings) on stage 0, the rest (with ln_f) on stage 1.
  checkpoint::Manifest m;
  m.num_shards = 2;
  m.shards.resize(2);
  for (int s = 0; s < 2; ++s) {
    m.shards[s].shard = s;
    m.shards[s].file = "stage_" + std::to_string(s) + ".h5";
  }
  auto stage_of = [](const model::ParamSpec& p) {
    if (p.layer >= 0) return p.layer < 5 ? 0 : 1;
    return p.name == model::kWteWeight || p.name == model::kWpeWeight ? 0 : 1;
  };
  for (const auto& p : table) {
    auto& shard = m.shards[stage_of(p)];
    shard.params.push_back(p.name);
    shard.datasets[std::string("/") + checkpoint::kParams + "/" + p.name].shape = p.shape;
  }
  checkpoint::index_params(m, "test manifest");

  REQUIRE(m.layer_shards.size() == static_cast<size_t>(config.layers));
  for (const auto& p : table) {
    INFO(p.name);
    const int layer = model::layer_of(p.name);
    REQUIRE(layer == p.layer);
    if (layer >= 0) REQUIRE(m.layer_shards[layer] == stage_of(p));
  }
}

TEST_CASE("block numbers past the largest model are not blocks, in both parses", "[checkpoint]") {
  for (const std::string name : {"layers.999.fc.weight", "layers.99999999999.fc.weight"}) {
    INFO(name);
    CHECK(model::layer_of(name) == -1);
    checkpoint::Manifest m;
    m.num_shards = 1;
    m.shards.resize(1);
    m.shards[0].file = "stage_0.h5";
    m.shards[0].params.push_back(name);
    m.shards[0].datasets[std::string("/") + checkpoint::kParams + "/" + name].shape = {1};
    checkpoint::index_params(m, "test manifest");
    CHECK(m.layer_shards.empty());  // not resized to a billion entries
  }
  CHECK(model::layer_of("layers.998.fc.weight") == 998);
}
