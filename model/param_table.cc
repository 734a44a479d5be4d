#include "model/param_table.h"

#include <cctype>
#include <cmath>

#include <fmt/format.h>

namespace conveyor::model {

size_t ParamSpec::numel() const {
  size_t n = 1;
  for (int64_t s : shape) n *= static_cast<size_t>(s);
  return n;
}

std::string layer_prefix(int layer) {
  return fmt::format("layers.{:03d}.", layer);
}

std::string layer_param_name(int layer, std::string_view suffix) {
  return layer_prefix(layer).append(suffix);
}

int layer_of(std::string_view name) {
  constexpr std::string_view prefix = "layers.";
  if (!name.starts_with(prefix)) return -1;
  size_t i = prefix.size();
  int layer = 0;
  bool digits = false;
  while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i]))) {
    layer = layer * 10 + (name[i] - '0');
    if (layer >= kMaxLayers) return -1;  // no block has this number (and no int overflow)
    digits = true;
    ++i;
  }
  if (!digits || (i < name.size() && name[i] != '.')) return -1;
  return layer;
}

std::vector<ParamSpec> parameter_table(const ModelConfig& c) {
  const int64_t d = c.dim;
  const float std_w = 0.02f;
  // GPT-2 scales the residual projections by 1/sqrt(2L) so the residual stream's variance
  // does not grow with depth.
  const float std_residual = 0.02f / std::sqrt(2.0f * c.layers);
  std::vector<ParamSpec> t;
  auto weight = [&](std::string name, std::vector<int64_t> shape, int layer, float stdev) {
    t.push_back({std::move(name), std::move(shape), layer, true, stdev, 0});
  };
  auto constant = [&](std::string name, int64_t n, int layer, float value) {
    t.push_back({std::move(name), {n}, layer, false, 0, value});
  };
  weight(kWteWeight, {c.vocab, d}, -1, std_w);
  weight(kWpeWeight, {c.seq, d}, -1, std_w);
  for (int l = 0; l < c.layers; ++l) {
    const std::string p = layer_prefix(l);
    constant(p + "ln1.weight", d, l, 1);
    constant(p + "ln1.bias", d, l, 0);
    weight(p + "attn.qkv.weight", {3 * d, d}, l, std_w);
    constant(p + "attn.qkv.bias", 3 * d, l, 0);
    weight(p + "attn.proj.weight", {d, d}, l, std_residual);
    constant(p + "attn.proj.bias", d, l, 0);
    constant(p + "ln2.weight", d, l, 1);
    constant(p + "ln2.bias", d, l, 0);
    weight(p + "mlp.fc.weight", {4 * d, d}, l, std_w);
    constant(p + "mlp.fc.bias", 4 * d, l, 0);
    weight(p + "mlp.proj.weight", {d, 4 * d}, l, std_residual);
    constant(p + "mlp.proj.bias", d, l, 0);
  }
  constant(kLnFWeight, d, -1, 1);
  constant(kLnFBias, d, -1, 0);
  return t;
}

}  // namespace conveyor::model
