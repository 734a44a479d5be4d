// The model a conveyor checkpoint was trained with, from its manifest (config.model).
#pragma once

#include "checkpoint/checkpoint.h"
#include "model/config.h"

namespace conveyor::interop {

// Throws Error(kUsage) naming the checkpoint when it does not record its model's shape.
model::ModelConfig saved_model(const checkpoint::CheckpointReader& reader);

}  // namespace conveyor::interop
