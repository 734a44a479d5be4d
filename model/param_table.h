// The one table of GPT-2's parameters: (name, shape, init, decay), in global order.
//
// Names and shapes are a contract shared with checkpoints (DESIGN.md): weights are stored
// [out, in] like PyTorch's nn.Linear; NNN is the global layer index, zero-padded to 3 digits;
// the head is tied to wte.weight. Buffers, the optimizer, the gradient norm and checkpoints
// all walk this table, so nothing keeps a second list of names in step by hand.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/config.h"

namespace conveyor::model {

// The parameters outside the transformer blocks. The head has no weight of its own: it is
// tied to kWteWeight.
inline constexpr const char* kWteWeight = "wte.weight";   // token embedding [vocab, d]
inline constexpr const char* kWpeWeight = "wpe.weight";   // position embedding [seq, d]
inline constexpr const char* kLnFWeight = "ln_f.weight";  // final layer norm [d]
inline constexpr const char* kLnFBias = "ln_f.bias";
// All of them, in table order (wte and wpe come first, ln_f last).
inline constexpr std::array<const char*, 4> kNonLayerParams = {kWteWeight, kWpeWeight, kLnFWeight,
                                                               kLnFBias};

struct ParamSpec {
  std::string name;            // e.g. "layers.007.attn.qkv.weight"
  std::vector<int64_t> shape;  // e.g. {3*d, d}
  int layer = -1;              // global block index, or -1 for wte/wpe/ln_f
  bool decay = false;          // AdamW weight decay applies (2-D weights only)
  float init_std = 0;          // > 0: normal(0, init_std); else constant init_value
  float init_value = 0;
  size_t numel() const;
};

// Global order: wte, wpe, then each layer's ln1, attn.qkv, attn.proj, ln2, mlp.fc, mlp.proj
// (weight before bias), then ln_f.
std::vector<ParamSpec> parameter_table(const ModelConfig& config);

// "layers.007." for layer 7.
std::string layer_prefix(int layer);
// The name of a block parameter: layer_param_name(7, "attn.qkv.weight") is
// "layers.007.attn.qkv.weight".
std::string layer_param_name(int layer, std::string_view suffix);
// The global layer index in a block parameter's name ("layers.007.attn.qkv.weight" -> 7), or
// -1 for a name outside the transformer blocks (kNonLayerParams, or anything else).
int layer_of(std::string_view name);

}  // namespace conveyor::model
