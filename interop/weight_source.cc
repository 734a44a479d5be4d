#include "interop/weight_source.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "common/error.h"
#include "common/file_io.h"
#include "common/json_number.h"
#include "common/printable.h"
#include "interop/hf_gpt2.h"
#include "interop/llmc_gpt2.h"
#include "interop/safetensors.h"
#include "interop/saved_model.h"
#include "model/param_table.h"

namespace conveyor::interop {

namespace fs = std::filesystem;

namespace {

void require_count(const std::string& where, const std::string& name, size_t have, size_t want) {
  CONVEYOR_REQUIRE(have == want, "{}: parameter {} has {} values where the model needs {}", where,
                   name, have, want);
}

// A path in a message: escaped, since a file name may hold terminal codes.
std::string shown(const fs::path& path) {
  return printable(path.string(), 512);
}

std::string shape_text(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

class HfSource : public WeightSource {
 public:
  explicit HfSource(const fs::path& dir) : dir_(dir), file_(dir / "model.safetensors") {
    const fs::path config_file = dir / "config.json";
    const auto text = read_input_file(config_file, "config.json");
    const auto j = nlohmann::json::parse(text, nullptr, false);
    CONVEYOR_REQUIRE(j.is_object(), "{} is not JSON", shown(config_file));
    // Every number through common/json_number.h: 4294967298 is refused, never read as 2.
    auto field = [&](const char* key, int64_t min, int64_t max, const char* unit) {
      CONVEYOR_REQUIRE(j.contains(key), "{} has no \"{}\"; is it a GPT-2 model?",
                       shown(config_file), key);
      return static_cast<int>(
          json_integer(j[key], fmt::format("{} \"{}\"", shown(config_file), key), min, max, unit));
    };
    config_.layers = field("n_layer", 1, model::kMaxLayers, "layers");
    config_.heads = field("n_head", 1, model::kMaxDim, "heads");
    config_.dim = field("n_embd", 1, model::kMaxDim, "channels");
    config_.seq = field("n_positions", 1, std::numeric_limits<int>::max(), "positions");
    config_.vocab = field("vocab_size", 2, 65536, "tokens");
    const auto act = j.value("activation_function", nlohmann::json("gelu_new"));
    CONVEYOR_REQUIRE(act == "gelu_new" || act == "gelu_pytorch_tanh",
                     "{} uses activation {}; conveyor's GPT-2 has tanh GELU (gelu_new)",
                     shown(config_file), printable(act.dump(), 64));
    const auto inner = j.value("n_inner", nlohmann::json());
    CONVEYOR_REQUIRE(
        inner.is_null() || (inner.is_number_integer() && inner == 4 * int64_t{config_.dim}),
        "{} has n_inner {}; conveyor's MLP is 4 x n_embd wide", shown(config_file),
        printable(inner.dump(), 64));
    try {
      config_.validate();
    } catch (const Error& e) {
      throw Error(ErrorKind::kUsage, fmt::format("{}: {}", shown(config_file), e.message()),
                  "is it a GPT-2 model conveyor can hold?");
    }
    // Every tensor of the model, with its exact shape (a Conv1D weight as HF stores it,
    // [in, out]): a shape with the right element count but the wrong dimensions would be read,
    // or transposed, as garbage.
    for (const auto& spec : model::parameter_table(config_)) {
      const HfName hf = hf_name_of(spec.name);
      std::vector<int64_t> want = spec.shape;
      if (hf.transposed) std::swap(want[0], want[1]);
      CONVEYOR_REQUIRE(file_.has(hf.name), "{} has no tensor {} (conveyor's {})",
                       shown(file_path()), hf.name, spec.name);
      const auto& found = file_.shape(hf.name);
      if (found != want) {
        throw Error(ErrorKind::kUsage,
                    fmt::format("{}: tensor {} has shape {} where the model of config.json needs "
                                "{}{}",
                                shown(file_path()), hf.name, shape_text(found), shape_text(want),
                                hf.transposed ? " (a Conv1D weight, stored [in, out])" : ""),
                    "the file and config.json do not belong together, or the file is damaged");
      }
    }
  }
  const model::ModelConfig& config() const override { return config_; }
  std::string describe() const override {
    return fmt::format("Hugging Face GPT-2 folder {}", shown(dir_));
  }
  void read(const std::string& name, std::span<float> out) override {
    const HfName hf = hf_name_of(name);
    CONVEYOR_REQUIRE(file_.has(hf.name), "{} has no tensor {} (conveyor's {})", describe(), hf.name,
                     name);
    const auto values = file_.values(hf.name);
    require_count(describe(), hf.name, values.size(), out.size());
    if (!hf.transposed) {
      std::copy(values.begin(), values.end(), out.begin());
      return;
    }
    const auto& shape = file_.shape(hf.name);  // [in, out], checked when opened
    CONVEYOR_REQUIRE(shape.size() == 2, "{}: {} is not a matrix", describe(), hf.name);
    const int64_t rows = shape[0], cols = shape[1];
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) out[size_t(c * rows + r)] = values[size_t(r * cols + c)];
  }

 private:
  fs::path file_path() const { return dir_ / "model.safetensors"; }

  fs::path dir_;
  checkpoint::SafetensorsFile file_;
  model::ModelConfig config_;
};

class LlmcSource : public WeightSource {
 public:
  explicit LlmcSource(const fs::path& path)
      : path_(path), bytes_(read_input_file(path, "llm.c checkpoint", uint64_t{1} << 40)) {
    const std::string where = shown(path);
    CONVEYOR_REQUIRE(bytes_.size() >= kLlmcHeaderInts * 4,
                     "{} is too short for llm.c's 1024-byte header ({} bytes)", where,
                     bytes_.size());
    int32_t h[kLlmcHeaderInts];
    std::memcpy(h, bytes_.data(), sizeof h);
    CONVEYOR_REQUIRE(h[0] == kLlmcMagic, "{} does not start with llm.c's magic {} (found {})",
                     where, kLlmcMagic, h[0]);
    CONVEYOR_REQUIRE(h[1] == 1 || h[1] == kLlmcVersion,
                     "{} is llm.c checkpoint version {}; conveyor reads the fp32 versions 1 and 3",
                     where, h[1]);
    config_.seq = h[2];
    config_.vocab = h[3];
    config_.layers = h[4];
    config_.heads = h[5];
    config_.dim = h[6];
    padded_vocab_ = h[1] == kLlmcVersion ? h[7] : h[3];
    config_.validate();
    CONVEYOR_REQUIRE(padded_vocab_ >= config_.vocab,
                     "{}: padded vocabulary {} is below the vocabulary {}", where, padded_vocab_,
                     config_.vocab);
    // Offsets of the 16 tensors, in llm.c's order.
    // In 128 bits: a header's shape can claim more than 2^64 bytes, and a wrapped size could
    // match the file's. Every offset is at most the file's size once the total matches it.
    using Big = unsigned __int128;
    const Big C = config_.dim, L = config_.layers, T = config_.seq;
    Big at = kLlmcHeaderInts * 4;
    auto place = [&](const std::string& key, Big count) {
      offsets_[key] = {static_cast<size_t>(at), static_cast<size_t>(count)};
      at += count * 4;
    };
    place("wte", Big(padded_vocab_) * C);
    place("wpe", T * C);
    const std::pair<const char*, Big> layer[] = {{"ln1.weight", C},
                                                 {"ln1.bias", C},
                                                 {"attn.qkv.weight", 3 * C * C},
                                                 {"attn.qkv.bias", 3 * C},
                                                 {"attn.proj.weight", C * C},
                                                 {"attn.proj.bias", C},
                                                 {"ln2.weight", C},
                                                 {"ln2.bias", C},
                                                 {"mlp.fc.weight", 4 * C * C},
                                                 {"mlp.fc.bias", 4 * C},
                                                 {"mlp.proj.weight", 4 * C * C},
                                                 {"mlp.proj.bias", C}};
    for (const auto& [suffix, count] : layer) place(suffix, L * count);
    place(model::kLnFWeight, C);
    place(model::kLnFBias, C);
    CONVEYOR_REQUIRE(at == bytes_.size(),
                     "{} has {} bytes; an llm.c GPT-2 of its header's shape has {:.0f} (truncated, "
                     "or another format)",
                     where, bytes_.size(), static_cast<double>(at));
  }
  const model::ModelConfig& config() const override { return config_; }
  std::string describe() const override { return fmt::format("llm.c checkpoint {}", shown(path_)); }
  void read(const std::string& name, std::span<float> out) override {
    const int layer = model::layer_of(name);
    std::string key = name;
    size_t first = 0;  // element offset inside the stacked tensor
    if (name == model::kWteWeight) key = "wte";
    if (name == model::kWpeWeight) key = "wpe";
    if (layer >= 0) {
      key = name.substr(model::layer_prefix(layer).size());
      first = size_t(layer) * out.size();
    }
    auto it = offsets_.find(key);
    CONVEYOR_REQUIRE(it != offsets_.end(), "{} has no parameter {}", describe(), name);
    const auto [byte, count] = it->second;
    const size_t per = layer >= 0 ? count / size_t(config_.layers) : count;
    // wte: the first V of the padded rows.
    const size_t want = name == model::kWteWeight ? size_t(config_.vocab) * config_.dim : per;
    require_count(describe(), name, want, out.size());
    std::memcpy(out.data(), bytes_.data() + byte + first * 4, out.size() * 4);
  }

 private:
  fs::path path_;
  std::string bytes_;
  model::ModelConfig config_;
  int padded_vocab_ = 0;
  std::map<std::string, std::pair<size_t, size_t>> offsets_;  // key -> (byte, elements)
};

class CheckpointSource : public WeightSource {
 public:
  explicit CheckpointSource(const fs::path& dir)
      : dir_(checkpoint::resolve_step_dir(dir)),
        reader_(verified(dir_)),
        config_(saved_model(reader_)) {}
  const model::ModelConfig& config() const override { return config_; }
  std::string describe() const override {
    return fmt::format("conveyor checkpoint {}", shown(dir_));
  }
  void read(const std::string& name, std::span<float> out) override {
    reader_.read(checkpoint::kParams, name, out.data(), out.size());
  }

 private:
  static const fs::path& verified(const fs::path& dir) {
    checkpoint::verify(dir, checkpoint::VerifyLevel::kStructure);
    return dir;
  }
  fs::path dir_;
  checkpoint::CheckpointReader reader_;
  model::ModelConfig config_;
};

}  // namespace

std::unique_ptr<WeightSource> WeightSource::open(const fs::path& path) {
  std::error_code ec;
  CONVEYOR_REQUIRE(fs::exists(path, ec), "{} does not exist", shown(path));
  if (fs::is_directory(path, ec)) {
    if (fs::exists(path / "config.json", ec) && fs::exists(path / "model.safetensors", ec))
      return std::make_unique<HfSource>(path);
    if (fs::exists(path / checkpoint::kManifestFile, ec) ||
        fs::exists(path / checkpoint::kLatestFile, ec))
      return std::make_unique<CheckpointSource>(path);
    throw Error(ErrorKind::kUsage,
                fmt::format("{} is neither a Hugging Face GPT-2 folder (config.json + "
                            "model.safetensors) nor a conveyor checkpoint",
                            shown(path)),
                "give a model folder, an llm.c .bin checkpoint or a checkpoint directory");
  }
  if (path.filename() == "model.safetensors") return std::make_unique<HfSource>(path.parent_path());
  // A FIFO, device or folder is refused at once (kUsage), never blocked on.
  int32_t magic = 0;
  {
    const UniqueFd fd = open_input_file(path, "weights file");
    ssize_t n;
    do n = ::pread(fd.get(), &magic, sizeof magic, 0);
    while (n < 0 && errno == EINTR);
  }
  if (magic == kLlmcMagic) return std::make_unique<LlmcSource>(path);
  throw Error(ErrorKind::kUsage,
              fmt::format("{} is not a file conveyor reads weights from: no llm.c magic ({}), "
                          "not model.safetensors",
                          shown(path), kLlmcMagic),
              "give a model folder, an llm.c .bin checkpoint or a checkpoint directory");
}

void require_same_model(const WeightSource& source, const model::ModelConfig& wanted) {
  const auto& have = source.config();
  std::vector<std::string> differ;
  auto check = [&](const char* flag, int mine, int theirs) {
    if (mine != theirs) differ.push_back(fmt::format("{} {} (the run has {})", flag, theirs, mine));
  };
  check("--layers", wanted.layers, have.layers);
  check("--heads", wanted.heads, have.heads);
  check("--dim", wanted.dim, have.dim);
  check("--seq", wanted.seq, have.seq);
  check("--vocab", wanted.vocab, have.vocab);
  if (differ.empty()) return;
  throw Error(
      ErrorKind::kUsage,
      fmt::format("{} is a model of another shape: {}", source.describe(), fmt::join(differ, ", ")),
      "set those flags to the model's values");
}

}  // namespace conveyor::interop
