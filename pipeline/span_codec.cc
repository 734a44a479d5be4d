#include "pipeline/span_codec.h"

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace conveyor::pipeline {

std::vector<uint8_t> spans_to_bytes(const std::vector<Span>& spans) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& s : spans) {
    j.push_back({s.stage, s.name, s.category, s.start_us, s.dur_us, s.row});
  }
  return nlohmann::json::to_cbor(j);
}

std::vector<Span> spans_from_bytes(const std::vector<uint8_t>& bytes) {
  std::vector<Span> spans;
  try {
    for (const auto& e : nlohmann::json::from_cbor(bytes)) {
      spans.push_back(Span{e[0].get<int>(), e[1].get<std::string>(), e[2].get<std::string>(),
                           e[3].get<double>(), e[4].get<double>(), e[5].get<std::string>()});
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::kRuntime,
                fmt::format("malformed trace spans from a peer: {}", e.what()));
  }
  return spans;
}

}  // namespace conveyor::pipeline
