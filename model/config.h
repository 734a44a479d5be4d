// GPT-2 model shape. Validated once; everything else trusts it.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace conveyor::model {

// The widest model the kernels index with 32-bit ints (the MLP is 4 x dim wide).
inline constexpr int kMaxDim = (1 << 29) - 1;
// Parameter names number blocks with three digits ("layers.007.").
inline constexpr int kMaxLayers = 999;

struct ModelConfig {
  int layers = 4;   // transformer blocks (L)
  int heads = 4;    // attention heads (H)
  int dim = 128;    // model width (d)
  int seq = 64;     // context length (T)
  int vocab = 256;  // vocabulary size (V); 256 = byte-level

  int head_dim() const { return dim / heads; }
  // Throws Error(kUsage) naming the flag to change when the shape is impossible.
  void validate() const;
  // Number of parameters of one transformer block (weights, biases, both LayerNorms).
  size_t parameters_per_layer() const;
  // Number of parameters of the whole model (the tied head counted once).
  size_t num_parameters() const;
  nlohmann::json to_json() const;
  static ModelConfig from_json(const nlohmann::json& j);
  bool operator==(const ModelConfig&) const = default;
};

}  // namespace conveyor::model
