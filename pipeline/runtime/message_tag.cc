#include "pipeline/runtime/message_tag.h"

#include <fmt/format.h>

#include "common/error.h"

namespace conveyor::pipeline {

namespace {
constexpr int kStepBits = 21, kMicrobatchBits = 16, kStageBits = 8, kKindBits = 3;
static_assert(kStepBits + kMicrobatchBits + kStageBits + kKindBits == transport::kTagBits);
constexpr uint64_t mask(int bits) {
  return (uint64_t{1} << bits) - 1;
}

const char* kind_name(MessageKind kind) {
  switch (kind) {
    case MessageKind::kActivation:
      return "activation";
    case MessageKind::kGradient:
      return "gradient";
    case MessageKind::kTiedGradient:
      return "tied wte gradient";
    case MessageKind::kGeneration:
      return "generation activation";
    case MessageKind::kValidation:
      return "validation activation";
    case MessageKind::kAllReduce:
      return "all-reduce chunk";
    case MessageKind::kTracePart:
      return "trace piece";
  }
  return "unknown message";
}
}  // namespace

transport::Tag encode(const MessageTag& t) {
  CONVEYOR_CHECK(t.microbatch >= 0 && t.microbatch < kMaxTagMicrobatches,
                 "micro-batch {} does not fit a message tag", t.microbatch);
  CONVEYOR_CHECK(t.virtual_stage >= 0 && t.virtual_stage < kMaxTagVirtualStages,
                 "virtual stage {} does not fit a message tag", t.virtual_stage);
  return (static_cast<uint64_t>(t.kind) << (kStepBits + kMicrobatchBits + kStageBits)) |
         (static_cast<uint64_t>(t.virtual_stage) << (kStepBits + kMicrobatchBits)) |
         (static_cast<uint64_t>(t.microbatch) << kStepBits) |
         (static_cast<uint64_t>(t.step) & mask(kStepBits));
}

MessageTag decode(transport::Tag tag) {
  MessageTag t;
  t.step = static_cast<int64_t>(tag & mask(kStepBits));
  t.microbatch = static_cast<int>((tag >> kStepBits) & mask(kMicrobatchBits));
  t.virtual_stage = static_cast<int>((tag >> (kStepBits + kMicrobatchBits)) & mask(kStageBits));
  t.kind = static_cast<MessageKind>((tag >> (kStepBits + kMicrobatchBits + kStageBits)) &
                                    mask(kKindBits));
  return t;
}

std::string describe_message(transport::Tag tag) {
  const MessageTag t = decode(tag);
  switch (t.kind) {
    case MessageKind::kActivation:
    case MessageKind::kGradient:
      return fmt::format("{} of micro-batch {} for virtual stage {}, step {}", kind_name(t.kind),
                         t.microbatch, t.virtual_stage, t.step);
    case MessageKind::kTiedGradient:
      return fmt::format("{}, step {}", kind_name(t.kind), t.step);
    case MessageKind::kGeneration:
      return fmt::format("{} of token {} for virtual stage {}", kind_name(t.kind), t.step,
                         t.virtual_stage);
    case MessageKind::kValidation:
      return fmt::format("{} of batch {} for virtual stage {}, after step {}", kind_name(t.kind),
                         t.microbatch, t.virtual_stage, t.step);
    case MessageKind::kAllReduce:
      return fmt::format("{} of ring step {}, reduction {}", kind_name(t.kind), t.microbatch,
                         t.step);
    case MessageKind::kTracePart:
      return fmt::format("{} {} ({})", kind_name(t.kind), t.step,
                         t.microbatch == 0 ? "length" : "bytes");
  }
  return fmt::format("unknown message (tag {:#x})", tag);
}

}  // namespace conveyor::pipeline
