// GPT-2 weights in Hugging Face's layout: transformers' GPT2LMHeadModel, saved as a model
// folder (model.safetensors + config.json).
//
// Names and layouts (conveyor -> HF):
//   wte.weight [V, d]                 transformer.wte.weight [V, d]
//   wpe.weight [T, d]                 transformer.wpe.weight [T, d]
//   layers.NNN.ln1.{weight,bias}      transformer.h.N.ln_1.{weight,bias}
//   layers.NNN.attn.qkv.weight [3d,d] transformer.h.N.attn.c_attn.weight [d, 3d]  (transposed:
//   layers.NNN.attn.proj.weight       transformer.h.N.attn.c_proj.weight            HF's Conv1D
//   layers.NNN.mlp.fc.weight          transformer.h.N.mlp.c_fc.weight               stores
//   layers.NNN.mlp.proj.weight        transformer.h.N.mlp.c_proj.weight             [in, out])
//   the biases of those four          the same names with .bias (unchanged)
//   layers.NNN.ln2.{weight,bias}      transformer.h.N.ln_2.{weight,bias}
//   ln_f.{weight,bias}                transformer.ln_f.{weight,bias}
// The head is tied to wte and, as transformers saves it, not written (lm_head.weight);
// config.json says tie_word_embeddings. conveyor's GELU is GPT-2's tanh form ("gelu_new"),
// layer norm eps 1e-5, qkv rows q, k, v with heads as contiguous slices: as in GPT-2.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "model/config.h"

namespace conveyor::interop {

// The HF name of conveyor parameter `name`, and whether its matrix is stored transposed.
struct HfName {
  std::string name;
  bool transposed = false;
};
HfName hf_name_of(const std::string& name);

// transformers' GPT2Config for `model`, as config.json holds it.
std::string hf_config_json(const model::ModelConfig& model);

// Writes OUT/model.safetensors and OUT/config.json from a committed checkpoint step
// (any number of shards: parameters are read by name). Creates OUT. Each file is replaced whole
// (common/file_io.h: temporary name, fsync, rename; a link there is replaced, not followed).
// Throws Error(kUsage), before any work, when OUT exists and is not a folder; kUsage for a
// checkpoint without its model configuration or a parameter, kRuntime when writing fails.
void export_hf(const std::filesystem::path& step_dir, const std::filesystem::path& out_dir);

}  // namespace conveyor::interop
