#include "interop/saved_model.h"

#include "common/error.h"
#include "common/printable.h"

namespace conveyor::interop {

model::ModelConfig saved_model(const checkpoint::CheckpointReader& reader) {
  const auto& saved = reader.manifest().config;
  CONVEYOR_REQUIRE(saved.is_object() && saved.contains("model"),
                   "checkpoint {} does not record its model's shape (config.model); its weights "
                   "cannot be read as a GPT-2",
                   printable(reader.dir().string(), 512));
  try {
    // Numbers through common/json_number.h (ModelConfig::from_json), then the model's ranges.
    auto config = model::ModelConfig::from_json(saved.at("model"));
    config.validate();
    return config;
  } catch (const Error& e) {
    throw Error(ErrorKind::kUsage,
                fmt::format("the model configuration saved in checkpoint {} is malformed: {}",
                            printable(reader.dir().string(), 512), e.message()),
                "the checkpoint is damaged; use an older step or restore it");
  }
}

}  // namespace conveyor::interop
