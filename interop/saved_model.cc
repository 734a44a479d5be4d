#include "interop/saved_model.h"

#include "common/error.h"

namespace conveyor::interop {

model::ModelConfig saved_model(const checkpoint::CheckpointReader& reader) {
  const auto& saved = reader.manifest().config;
  CONVEYOR_REQUIRE(saved.is_object() && saved.contains("model"),
                   "checkpoint {} does not record its model's shape (config.model); its weights "
                   "cannot be read as a GPT-2",
                   reader.dir().string());
  return model::ModelConfig::from_json(saved.at("model"));
}

}  // namespace conveyor::interop
