// The pipeline's codec for transport tags: what a message between two ranks carries.
//
// The transport matches opaque 48-bit tags (transport/transport.h); this is the only place
// that gives them meaning. Layout, most significant bit first:
//   [ kind : 3 | virtual stage : 8 | micro-batch : 16 | step : 21 ]
// `virtual_stage` is the receiving end's; the step keeps only its low 21 bits: messages 2^21 steps
// apart never coexist. A sender and a receiver build the same MessageTag for one message.
#pragma once

#include <cstdint>
#include <string>

#include "transport/transport.h"

namespace conveyor::pipeline {

enum class MessageKind : uint8_t {
  kActivation = 0,    // F's output, to the next virtual stage
  kGradient = 1,      // B's input gradient, to the previous virtual stage
  kTiedGradient = 2,  // the tied embedding's wte gradient, between embedding and head
  kGeneration = 3,    // a generated token's activations, stage to stage
  kValidation = 4,    // a validation batch's activations (micro-batch: the batch's index)
  kAllReduce = 5,     // a ring all-reduce step (step: the reduction, micro-batch: ring step)
  kTracePart = 6,     // a piece of a rank's trace, to the coordinator at the end (step: the
                      // piece's index, micro-batch: 0 for its length, 1 for its bytes)
};

inline constexpr int kMaxTagVirtualStages = 1 << 8;
inline constexpr int kMaxTagMicrobatches = 1 << 16;

struct MessageTag {
  MessageKind kind = MessageKind::kActivation;
  int64_t step = 0;  // training step (or generated token index)
  int microbatch = 0;
  int virtual_stage = 0;
  friend bool operator==(const MessageTag&, const MessageTag&) = default;
};

// REQUIRES 0 <= microbatch < kMaxTagMicrobatches, 0 <= virtual_stage < kMaxTagVirtualStages
// (TrainConfig::validate keeps them there); else Error(kRuntime).
transport::Tag encode(const MessageTag& tag);
// The step comes back modulo 2^21.
MessageTag decode(transport::Tag tag);
// "activation of micro-batch 3 for virtual stage 2, step 17": the transport's describer.
std::string describe_message(transport::Tag tag);

}  // namespace conveyor::pipeline
