// `train --partition` in the configuration (TrainConfig::validate): auto is accepted, and a
// partition that cannot place every layer once is refused before anything starts.
#include <catch2/catch.hpp>

#include "common/error.h"
#include "train/train_config.h"

namespace {

using namespace conveyor;
using namespace conveyor::pipeline;

TrainConfig four_stages(int layers, const std::string& partition) {
  TrainConfig c;
  c.model.layers = layers;
  c.model.vocab = 50257;
  c.stages = 4;
  c.partition = partition;
  return c;
}

std::string usage_error(const TrainConfig& c) {
  try {
    c.validate();
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kUsage) return e.what();
    throw;
  }
  return "";
}

}  // namespace

TEST_CASE("train accepts --partition auto", "[train]") {
  CHECK_NOTHROW(four_stages(12, "auto").validate());
  CHECK_NOTHROW(four_stages(4, "auto").validate());
  // Interleaved: 8 pieces on 4 stages.
  TrainConfig interleaved = four_stages(8, "auto");
  interleaved.schedule = "interleaved";
  CHECK_NOTHROW(interleaved.validate());
}

TEST_CASE("train refuses a partition that loses or duplicates a layer", "[train]") {
  // Too few layers for auto's pieces.
  CHECK(usage_error(four_stages(3, "auto")).find("every piece needs a layer") != std::string::npos);
  // One entry too few, a sum that drops or repeats a layer, an empty piece.
  CHECK(usage_error(four_stages(8, "3,3,2")).find("has 3 entries") != std::string::npos);
  CHECK(usage_error(four_stages(8, "3,3,2,1")).find("sums to 9") != std::string::npos);
  CHECK(usage_error(four_stages(8, "2,2,2,1")).find("sums to 7") != std::string::npos);
  CHECK(usage_error(four_stages(8, "4,2,2,0")).find("no layer") != std::string::npos);
}
