// The one table of GPT-2's parameters: (name, shape, init, decay), in global order.
//
// Names and shapes are a contract shared with checkpoints (DESIGN.md): weights are stored
// [out, in] like PyTorch's nn.Linear; NNN is the global layer index, zero-padded to 3 digits;
// the head is tied to wte.weight. Buffers, the optimizer, the gradient norm and checkpoints
// all walk this table, so nothing keeps a second list of names in step by hand.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace conveyor::model {

struct ParamSpec {
  std::string name;            // e.g. "layers.007.attn.qkv.weight"
  std::vector<int64_t> shape;  // e.g. {3*d, d}
  int layer = -1;              // global block index, or -1 for wte/wpe/ln_f
  bool decay = false;          // AdamW weight decay applies (2-D weights only)
  float init_std = 0;          // > 0: normal(0, init_std); else constant init_value
  float init_value = 0;
  size_t numel() const;
};

// The names outside the blocks. wte.weight is also the tied head's weight.
inline constexpr const char* kWteWeight = "wte.weight";
inline constexpr const char* kWpeWeight = "wpe.weight";
inline constexpr const char* kLnFWeight = "ln_f.weight";
inline constexpr const char* kLnFBias = "ln_f.bias";

// Global order: wte, wpe, then each layer's ln1, attn.qkv, attn.proj, ln2, mlp.fc, mlp.proj
// (weight before bias), then ln_f.
std::vector<ParamSpec> parameter_table(const ModelConfig& config);

// "layers.007." for layer 7.
std::string layer_prefix(int layer);

}  // namespace conveyor::model
