// The pipeline's message tags: every field survives the 48-bit transport tag, distinct
// messages never share a tag, and errors describe a tag in the pipeline's words.
#include <catch2/catch.hpp>

#include <set>

#include "common/error.h"
#include "pipeline/runtime/message_tag.h"

using namespace conveyor;
using namespace conveyor::pipeline;

TEST_CASE("message tags round-trip every field within the transport's tag width", "[pipeline]") {
  for (auto kind : {MessageKind::kActivation, MessageKind::kGradient, MessageKind::kTiedGradient,
                    MessageKind::kGeneration, MessageKind::kValidation, MessageKind::kAllReduce}) {
    for (int64_t step : {int64_t{0}, int64_t{1}, int64_t{(1 << 21) - 1}}) {
      for (int mb : {0, 7, kMaxTagMicrobatches - 1}) {
        for (int vs : {0, 3, kMaxTagVirtualStages - 1}) {
          const MessageTag t{kind, step, mb, vs};
          const transport::Tag packed = encode(t);
          CHECK(packed <= transport::kMaxTag);
          CHECK(decode(packed) == t);
        }
      }
    }
  }
}

TEST_CASE("distinct messages of one step get distinct tags", "[pipeline]") {
  std::set<transport::Tag> seen;
  int n = 0;
  for (auto kind : {MessageKind::kActivation, MessageKind::kGradient}) {
    for (int mb = 0; mb < 16; ++mb) {
      for (int vs = 0; vs < 8; ++vs) {
        seen.insert(encode(MessageTag{kind, 5, mb, vs}));
        ++n;
      }
    }
  }
  CHECK(seen.size() == size_t(n));
  // Steps 2^21 apart share a tag (never in flight together); neighbouring steps do not.
  CHECK(encode({MessageKind::kActivation, 3, 1, 1}) ==
        encode({MessageKind::kActivation, 3 + (1 << 21), 1, 1}));
  CHECK(encode({MessageKind::kActivation, 3, 1, 1}) != encode({MessageKind::kActivation, 4, 1, 1}));
}

TEST_CASE("a micro-batch or virtual stage outside the tag's range is refused", "[pipeline]") {
  CHECK_THROWS_AS(encode({MessageKind::kActivation, 0, kMaxTagMicrobatches, 0}), Error);
  CHECK_THROWS_AS(encode({MessageKind::kActivation, 0, -1, 0}), Error);
  CHECK_THROWS_AS(encode({MessageKind::kGradient, 0, 0, kMaxTagVirtualStages}), Error);
}

TEST_CASE("transport errors describe a message in the pipeline's words", "[pipeline]") {
  CHECK(describe_message(encode({MessageKind::kActivation, 17, 3, 2})) ==
        "activation of micro-batch 3 for virtual stage 2, step 17");
  CHECK(describe_message(encode({MessageKind::kGradient, 4, 0, 1})) ==
        "gradient of micro-batch 0 for virtual stage 1, step 4");
  CHECK(describe_message(encode({MessageKind::kTiedGradient, 9, 0, 0})) ==
        "tied wte gradient, step 9");
}
