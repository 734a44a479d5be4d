// StepReduction: what the stages of a job add up at the end of every step, in one
// all-reduce over the rendezvous connections.
//
// Every element has exactly one non-zero contributor (a parameter's sum of squares comes
// from the one stage that owns it, wte from the embedding's stage; a stage's times from
// that stage; the loss from the head's stage), so the element-wise sum is exact and the
// gradient norm, summed in global parameter order, does not depend on the partition. The
// async-save counts and the stop requests are sums over stages of 0/1 flags.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

namespace conveyor::pipeline {

// How far an async checkpoint save has got, summed over stages.
struct SaveProgress {
  int written = 0;  // stages whose shard is written
  int failed = 0;   // stages whose write failed
};

struct StepReduction {
  std::vector<double> grad_sum_squares;  // [global parameter] (model::parameter_table order)
  std::vector<double> schedule_seconds;  // [stage] first action start to last action end
  std::vector<double> busy_seconds;      // [stage] time in compute
  double loss = 0;                       // mean over micro-batches (the head's stage)
  SaveProgress save;
  int stop_requests = 0;  // ranks that were asked to stop (stop_request.h)

  // All zero, sized for a job.
  StepReduction(size_t num_params, int stages)
      : grad_sum_squares(num_params, 0.0),
        schedule_seconds(stages, 0.0),
        busy_seconds(stages, 0.0) {}

  // The flat form the transport sums, and back (sizes as at construction).
  std::vector<double> pack() const {
    std::vector<double> out(grad_sum_squares);
    out.insert(out.end(), schedule_seconds.begin(), schedule_seconds.end());
    out.insert(out.end(), busy_seconds.begin(), busy_seconds.end());
    out.push_back(loss);
    out.push_back(save.written);
    out.push_back(save.failed);
    out.push_back(stop_requests);
    return out;
  }
  // REQUIRES: flat.size() == pack().size().
  void unpack(std::span<const double> flat) {
    size_t at = 0;
    auto take = [&](std::vector<double>& v) {
      for (double& x : v) x = flat[at++];
    };
    take(grad_sum_squares);
    take(schedule_seconds);
    take(busy_seconds);
    loss = flat[at++];
    save.written = static_cast<int>(flat[at++]);
    save.failed = static_cast<int>(flat[at++]);
    stop_requests = static_cast<int>(flat[at++]);
  }
};

}  // namespace conveyor::pipeline
