// Serialises trace spans to bytes so every stage's spans can be collected on one rank.
#pragma once

#include <cstdint>
#include <vector>

#include "pipeline/trace.h"

namespace conveyor::pipeline {

std::vector<uint8_t> spans_to_bytes(const std::vector<Span>& spans);
// Throws Error(kRuntime) on malformed input.
std::vector<Span> spans_from_bytes(const std::vector<uint8_t>& bytes);

}  // namespace conveyor::pipeline
