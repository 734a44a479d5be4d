#include "interop/hf_gpt2.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "checkpoint/checkpoint.h"
#include "common/error.h"
#include "common/file_io.h"
#include "common/printable.h"
#include "interop/safetensors.h"
#include "interop/saved_model.h"
#include "model/param_table.h"

namespace conveyor::interop {

namespace {

// [rows, cols] row-major -> [cols, rows].
std::vector<float> transposed(const std::vector<float>& m, int64_t rows, int64_t cols) {
  std::vector<float> out(m.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[size_t(c * rows + r)] = m[size_t(r * cols + c)];
  return out;
}

}  // namespace

HfName hf_name_of(const std::string& name) {
  if (name == model::kWteWeight) return {"transformer.wte.weight"};
  if (name == model::kWpeWeight) return {"transformer.wpe.weight"};
  if (name == model::kLnFWeight) return {"transformer.ln_f.weight"};
  if (name == model::kLnFBias) return {"transformer.ln_f.bias"};
  const int layer = model::layer_of(name);
  CONVEYOR_REQUIRE(layer >= 0, "{} is not a GPT-2 parameter name", name);
  const std::string suffix = name.substr(model::layer_prefix(layer).size());
  static const std::pair<const char*, const char*> kBlock[] = {{"ln1.", "ln_1."},
                                                               {"ln2.", "ln_2."},
                                                               {"attn.qkv.", "attn.c_attn."},
                                                               {"attn.proj.", "attn.c_proj."},
                                                               {"mlp.fc.", "mlp.c_fc."},
                                                               {"mlp.proj.", "mlp.c_proj."}};
  for (const auto& [ours, theirs] : kBlock) {
    const std::string prefix = ours;
    if (suffix.rfind(prefix, 0) != 0) continue;
    const std::string rest = suffix.substr(prefix.size());  // "weight" or "bias"
    const bool conv1d = prefix.rfind("ln", 0) != 0 && rest == "weight";
    return {fmt::format("transformer.h.{}.{}{}", layer, theirs, rest), conv1d};
  }
  CONVEYOR_REQUIRE(false, "{} is not a GPT-2 parameter name", name);
  return {};
}

std::string hf_config_json(const model::ModelConfig& m) {
  const nlohmann::json config = {
      {"architectures", {"GPT2LMHeadModel"}},
      {"model_type", "gpt2"},
      {"vocab_size", m.vocab},
      {"n_positions", m.seq},
      {"n_ctx", m.seq},
      {"n_embd", m.dim},
      {"n_layer", m.layers},
      {"n_head", m.heads},
      {"n_inner", nullptr},  // 4 x n_embd, as conveyor's MLP
      {"activation_function", "gelu_new"},
      {"layer_norm_epsilon", 1e-5},
      {"resid_pdrop", 0.0},
      {"embd_pdrop", 0.0},
      {"attn_pdrop", 0.0},
      {"initializer_range", 0.02},
      {"scale_attn_weights", true},
      {"tie_word_embeddings", true},
      {"torch_dtype", "float32"},
      {"bos_token_id", m.vocab - 1},
      {"eos_token_id", m.vocab - 1},
  };
  return config.dump(2) + "\n";
}

void export_hf(const std::filesystem::path& step_dir, const std::filesystem::path& out_dir) {
  namespace fs = std::filesystem;
  // OUT is a folder: checked before any work, so a wrong path costs nothing.
  std::error_code ec;
  const auto st = fs::status(out_dir, ec);
  if (fs::exists(st) && !fs::is_directory(st)) {
    throw Error(ErrorKind::kUsage,
                fmt::format("export OUT {} is {}; --format hf writes a folder (model.safetensors "
                            "and config.json) and left it as it is",
                            printable(out_dir.string(), 512),
                            fs::is_regular_file(st) ? "a file" : "not a folder"),
                "give the path of a folder (it is created), or --format llmc for one file");
  }
  fs::create_directories(out_dir, ec);
  if (ec) {
    throw Error(ErrorKind::kUsage,
                fmt::format("cannot create export folder {}: {}", printable(out_dir.string(), 512),
                            ec.message()),
                "check that its parent folder exists and is writable");
  }
  checkpoint::CheckpointReader reader(step_dir);
  const auto config = saved_model(reader);
  std::vector<std::string> names;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<std::vector<float>> values;
  for (const auto& spec : model::parameter_table(config)) {
    const HfName hf = hf_name_of(spec.name);
    std::vector<float> v(checkpoint::element_count(spec.shape));
    reader.read(checkpoint::kParams, spec.name, v.data(), v.size());
    std::vector<int64_t> shape = spec.shape;
    if (hf.transposed) {
      v = transposed(v, shape[0], shape[1]);
      std::swap(shape[0], shape[1]);
    }
    names.push_back(hf.name);
    shapes.push_back(std::move(shape));
    values.push_back(std::move(v));
  }
  std::vector<checkpoint::SafetensorsEntry> entries;
  for (size_t i = 0; i < names.size(); ++i) entries.push_back({names[i], shapes[i], values[i]});
  // Each file written whole under a temporary name and renamed into place (common/file_io.h):
  // a link planted at either name is replaced, never written through.
  checkpoint::write_safetensors(
      out_dir / "model.safetensors", entries,
      {{"format", "pt"}, {"source", "conveyor"}, {"step", std::to_string(reader.manifest().step)}});
  write_file_atomic(out_dir / "config.json", hf_config_json(config));
}

}  // namespace conveyor::interop
