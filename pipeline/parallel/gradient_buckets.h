// How one stage's gradients are cut for the all-reduce among its replicas: buckets of whole
// parameters, each reduced as soon as the chunk that computes it has done its last weight
// gradient of the step, and, within a bucket, the ring's chunks
// (pipeline/parallel/ring_all_reduce.h) cut at parameter boundaries, so that every parameter is
// summed whole by one replica: its owner. The owner counts the parameter in the gradient norm,
// writes it to checkpoints and, with ZeRO-1, is the one replica that keeps its AdamW moments and
// updates it.
//
// Rules (docs/PARALLELISM.md):
//   - Buckets never mix chunks; within a chunk they are filled from its last parameter
//     backwards (the order backward produces them) up to `bucket_elements`; a parameter larger
//     than that is a bucket of its own. wte is always a bucket of its own (it is tied, see
//     GradientBucket::tied).
//   - Buckets are listed in the order their chunks finish: the plan lists the chunks in the
//     order given (the executor's), each chunk's buckets from its last parameter backwards.
//   - A bucket's parameters are cut into `replicas` contiguous runs of nearly equal size at
//     parameter boundaries (owner_bounds); run k goes to ring chunk k, whose sum the ring
//     leaves on replica chunk_holder(k): that replica owns the run's parameters, and the ring
//     sums with these chunks (ring_bounds == owner_bounds).
//   - A bucket of one parameter cannot be cut at parameter boundaries: it goes whole to the
//     replica owning the fewest elements so far, and the ring sums it with even chunks
//     (ring_bounds = even_chunks) as a full all-reduce, also under ZeRO-1, so that a large
//     parameter keeps the ring's bandwidth; its owner's update is then gathered with
//     owner_bounds, whose one non-empty chunk is the owner's.
// Pure; the same arguments give the same plan on every rank.
#pragma once

#include <cstddef>
#include <vector>

#include "model/param_table.h"

namespace conveyor::pipeline {

struct GradientBucket {
  int first_param = 0, end_param = 0;  // store parameter indices [first, end)
  size_t begin = 0, end = 0;           // element range in the store's gradient buffer
  int chunk = 0;                       // the model chunk whose last W completes it
  bool tied = false;                   // wte: all-reduced whole; on a stage without the
                                       // embedding its gradient comes from the tie instead
  // replicas + 1 offsets relative to begin: the ring's chunks when summing gradients, and the
  // chunks whose holders own the parameters (gathering parameters under ZeRO-1).
  std::vector<size_t> ring_bounds, owner_bounds;
  size_t elements() const { return end - begin; }
  // One parameter: summed by a full all-reduce (even with ZeRO-1; see above).
  bool single() const { return end_param - first_param == 1; }
};

struct BucketPlan {
  std::vector<GradientBucket> buckets;  // in the order they become ready
  std::vector<int> owner;               // [store parameter] the replica that owns it
};

// `params`: the stage's store parameters in store order; `chunk_of[i]` the chunk computing
// parameter i's gradient; `chunk_order`: the chunks in the order their last W runs.
// REQUIRES: bucket_elements >= 1, replicas >= 1.
BucketPlan plan_buckets(const std::vector<model::ParamSpec>& params,
                        const std::vector<int>& chunk_of, const std::vector<int>& chunk_order,
                        size_t bucket_elements, int replicas);

}  // namespace conveyor::pipeline
