// Parameter initialisation keyed by (seed, parameter name, element index).
//
// A counter-based generator: element i of parameter `name` depends only on the seed, the
// name and i, so the initial model is the same however it is partitioned into stages, and
// the last stage's copy of wte equals the first stage's.
#pragma once

#include <cstdint>

#include "model/param_table.h"

namespace conveyor::model {

// Fills out[0 .. spec.numel()) with the parameter's initial values.
void init_parameter(const ParamSpec& spec, uint64_t seed, float* out);

}  // namespace conveyor::model
