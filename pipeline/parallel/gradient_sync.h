// GradientSync: sums one stage's gradients over the replicas of that stage (data
// parallelism, docs/PARALLELISM.md), bucket by bucket over the ring all-reduce, and with
// ZeRO-1 gathers the parameters each replica updated.
//
// Per step, on every replica of the stage:
//   begin_step(step)               before the executor runs the step
//   gradients_done(c, first)       the executor's hook, during chunk c's last W: the chunk's
//                                  parameters from store index `first` on are final; the
//                                  buckets made only of those are queued for the communication
//                                  thread at once (overlap on), so they are summed while the
//                                  rest of the backward pass, the other chunks and the other
//                                  stages are still computing (the cool-down)
//   finish_gradients()             waits for every bucket (overlap off: reduces them all here)
//   ... tie the embedding, norm, clip, update ...
//   gather_parameters()            ZeRO-1: each bucket's parameters from their owners
//
// What holds the sum after finish_gradients(): without ZeRO every gradient in the store and
// the head's wte gradient; with ZeRO-1 the parameters this replica owns, wte on the
// embedding's stage and the head's wte gradient (the tie needs wte whole on every replica).
// On a stage that holds the head but not the embedding, the store's wte gradient is not
// summed: the tie overwrites it with embedding + head, both already summed.
//
// Determinism: each bucket is summed by the ring in a fixed order for its group and cut
// (ring_all_reduce.h), so a layout gives the same bits run to run, with or without ZeRO-1
// (reduce-scatter + all-gather is the same arithmetic as the all-reduce).
//
// Failure: every ring wait has the peer deadline; a dead replica surfaces as
// Error(kPeerFailed) naming it, rethrown by finish_gradients(). Destroyed while a reduction
// runs (the step failed around it), it aborts the job through the transport first, so the
// ring's waits end at once.
//
// Threading: begin_step, gradients_done, finish_gradients and gather_parameters are called
// from the training thread (gradients_done through the executor); the communication thread
// only runs rings on the buckets it was given.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "model/stage_model.h"
#include "pipeline/parallel/gradient_buckets.h"
#include "pipeline/runtime/trace.h"
#include "transport/transport.h"

namespace conveyor::pipeline {

struct GradientSyncOptions {
  bool zero1 = false;   // --zero 1
  bool overlap = true;  // --overlap on: reduce on a communication thread as chunks finish
  double wait_timeout_s = 0;
  // --trace: record a span per reduction on this trace row (tid; its name in trace_row_name).
  bool record_spans = false;
  int trace_row = 0;
  std::string trace_row_name;
};

class GradientSync {
 public:
  // `group`: the ranks of this stage's replicas, replica 0 first (Topology::replica_group);
  // `replica`: this rank's index in it. With one replica nothing is communicated and this
  // replica owns every parameter. `transport` is non-null when the group has several ranks.
  GradientSync(model::StageModel& model, BucketPlan plan, std::vector<int> group, int replica,
               transport::Transport* transport, GradientSyncOptions options);
  // Stops the communication thread (a reduction in flight is abandoned). REQUIRES: destroyed
  // before the transport (it holds registered regions).
  ~GradientSync();

  // Store parameter i is this replica's: it counts it in the norm, writes it to checkpoints
  // and, with ZeRO-1, keeps its moments and updates it.
  bool owns(int param) const { return plan_.owner[size_t(param)] == replica_; }
  // owns(i) for every store parameter i: the one mask of this replica's parameters (its
  // shard, its share of the norm, and with ZeRO-1 the moments it keeps).
  static std::vector<bool> owned_parameters(const BucketPlan& plan, int replica);
  const BucketPlan& plan() const { return plan_; }
  int replicas() const { return static_cast<int>(group_.size()); }

  void begin_step(int64_t step);
  void gradients_done(int chunk, int first_done_param);
  // Throws what a reduction threw (Error(kPeerFailed) for a dead replica, kRuntime for a
  // deadline).
  void finish_gradients();
  void gather_parameters();
  // The spans recorded since the last call (with record_spans), in the order they ended.
  std::vector<Span> take_spans();

 private:
  struct Job {
    int bucket;  // index into plan_.buckets; -1: the head's wte gradient
  };
  void run_job(const Job& job);  // reduce() and its span
  bool reduce(const Job& job);   // false: nothing to reduce here
  void worker();
  uint64_t op_id(int job_index) const;
  int jobs_per_step() const;  // the buckets, and the head's wte gradient on the head's stage

  model::StageModel& model_;
  BucketPlan plan_;
  std::vector<int> group_;
  int replica_;
  transport::Transport* transport_;
  GradientSyncOptions options_;
  int64_t step_ = 0;
  int head_chunk_ = -1;         // the chunk whose W completes the head's wte gradient (-1: no head)
  std::vector<float> scratch_;  // the reduce-scatter's receive buffer, sized once
  // With the backend's tensors in device memory: the receive buffer is the backend's too, and
  // the backend adds (ring_all_reduce.h); scratch_ stays empty.
  bool device_ = false;
  kernels::Buffer<float> device_scratch_;
  // Registered once with the transport, so the rings send from and receive into them
  // zero-copy with no per-message lookup: gradients, parameters (ZeRO-1's all-gather), the
  // head's wte gradient, scratch.
  transport::MemoryRegion grads_region_, params_region_, head_wte_region_, scratch_region_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  int pending_ = 0;                  // queued or running
  int queued_ = 0;                   // this step's, so far (training thread only)
  std::vector<bool> bucket_queued_;  // [bucket] queued this step (training thread only)
  bool head_queued_ = false;         // the head's wte gradient queued this step
  std::vector<Span> spans_;          // with record_spans
  std::exception_ptr failure_;       // the first failure (later jobs are skipped)
  bool stopping_ = false;
  bool running_ = false;  // the communication thread is inside a reduction
  std::thread thread_;
};

}  // namespace conveyor::pipeline
