#include "model/config.h"

#include <limits>

#include "common/error.h"
#include "common/json_number.h"
#include "common/printable.h"

namespace conveyor::model {

void ModelConfig::validate() const {
  CONVEYOR_REQUIRE(layers >= 1, "--layers must be at least 1 (got {})", layers);
  CONVEYOR_REQUIRE(heads >= 1, "--heads must be at least 1 (got {})", heads);
  CONVEYOR_REQUIRE(dim >= 1, "--dim must be at least 1 (got {})", dim);
  CONVEYOR_REQUIRE(dim % heads == 0,
                   "--dim {} is not divisible by --heads {}; choose a --dim that is a multiple of "
                   "--heads (for example {})",
                   dim, heads, (dim / heads + 1) * heads);
  CONVEYOR_REQUIRE(dim <= kMaxDim, "--dim must be at most {} (got {})", kMaxDim, dim);
  CONVEYOR_REQUIRE(seq >= 1, "--seq must be at least 1 (got {})", seq);
  CONVEYOR_REQUIRE(vocab >= 2 && vocab <= 65536,
                   "--vocab must be between 2 and 65536 (got {}); byte-level text uses 256, "
                   "GPT-2 token files 50257",
                   vocab);
  CONVEYOR_REQUIRE(layers <= kMaxLayers, "--layers must be at most {} (got {})", kMaxLayers,
                   layers);
}

size_t ModelConfig::parameters_per_layer() const {
  const size_t d = dim;
  // ln1, attn.qkv, attn.proj, ln2, mlp.fc, mlp.proj
  return 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (4 * d * d + 4 * d) + (4 * d * d + d);
}

size_t ModelConfig::num_parameters() const {
  const size_t d = dim;
  return static_cast<size_t>(vocab) * d + static_cast<size_t>(seq) * d +
         layers * parameters_per_layer() + 2 * d;
}

nlohmann::json ModelConfig::to_json() const {
  return {{"layers", layers}, {"heads", heads}, {"dim", dim}, {"seq", seq}, {"vocab", vocab}};
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j) {
  // Through common/json_number.h: a damaged manifest's 1e10 is refused, never cast to an int.
  CONVEYOR_REQUIRE(j.is_object(), "the model configuration {} is not an object",
                   printable(j.dump(), 64));
  auto field = [&](const char* key) {
    CONVEYOR_REQUIRE(j.contains(key), "the model configuration has no \"{}\"", key);
    return static_cast<int>(json_integer(j.at(key), key, 0, std::numeric_limits<int>::max(), key));
  };
  ModelConfig c;
  c.layers = field("layers");
  c.heads = field("heads");
  c.dim = field("dim");
  c.seq = field("seq");
  c.vocab = field("vocab");
  return c;
}

}  // namespace conveyor::model
