#include "pipeline/schedule/topology.h"

#include <fmt/format.h>

namespace conveyor::pipeline {

RankOrder parse_rank_order(const std::string& text) {
  if (text == "pipelines") return RankOrder::kPipelines;
  if (text == "replicas") return RankOrder::kReplicas;
  throw Error(ErrorKind::kUsage,
              fmt::format("--layout '{}' is not known; use pipelines (consecutive ranks form one "
                          "pipeline) or replicas (consecutive ranks are the replicas of a stage)",
                          text));
}

const char* rank_order_name(RankOrder order) {
  return order == RankOrder::kPipelines ? "pipelines" : "replicas";
}

std::string Topology::describe() const {
  std::string text = fmt::format("{} replica(s) x {} stage(s) (layout {})", replicas, stages,
                                 rank_order_name(order));
  for (int r = 0; r < replicas; ++r) {
    text += fmt::format("{} replica {} = ranks ", r == 0 ? ":" : ";", r);
    for (int s = 0; s < stages; ++s) text += fmt::format("{}{}", s == 0 ? "" : ",", rank(r, s));
  }
  return text;
}

}  // namespace conveyor::pipeline
