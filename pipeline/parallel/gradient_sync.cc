#include "pipeline/parallel/gradient_sync.h"

#include <algorithm>
#include <csignal>

#include "checkpoint/fault_injection.h"
#include "common/clock.h"
#include "common/error.h"
#include "pipeline/parallel/ring_all_reduce.h"
#include "transport/transport.h"

namespace conveyor::pipeline {

namespace {

// The region to hand the transport: none for a buffer that was not registered (empty).
const transport::MemoryRegion* if_valid(const transport::MemoryRegion& r) {
  return r.valid() ? &r : nullptr;
}

}  // namespace

std::vector<bool> GradientSync::owned_parameters(const BucketPlan& plan, int replica) {
  std::vector<bool> mask(plan.owner.size());
  for (size_t i = 0; i < mask.size(); ++i) mask[i] = plan.owner[i] == replica;
  return mask;
}

GradientSync::GradientSync(model::StageModel& model, BucketPlan plan, std::vector<int> group,
                           int replica, transport::Transport* transport,
                           GradientSyncOptions options)
    : model_(model),
      plan_(std::move(plan)),
      group_(std::move(group)),
      replica_(replica),
      transport_(transport),
      options_(options) {
  CONVEYOR_CHECK(group_.size() == 1 || transport_, "{} replicas need a transport", group_.size());
  for (int c = 0; c < model_.num_chunks(); ++c)
    if (model_.chunk(c).spec().has_head) head_chunk_ = c;
  if (group_.size() == 1) return;
  size_t largest_chunk = 0;
  for (const auto& b : plan_.buckets)
    for (size_t k = 0; k + 1 < b.ring_bounds.size(); ++k)
      largest_chunk = std::max(largest_chunk, b.ring_bounds[k + 1] - b.ring_bounds[k]);
  if (head_chunk_ >= 0)
    largest_chunk = std::max(largest_chunk,
                             (model_.head_wte_grad().size() + group_.size() - 1) / group_.size());
  device_ = model_.backend().memory_type() == kernels::MemoryType::kDevice;
  if (device_) {
    device_scratch_ = model_.backend().alloc<float>(largest_chunk);
  } else {
    scratch_.resize(largest_chunk);
  }
  auto& store = model_.store();
  auto register_span = [&](std::span<float> s) {  // all of them the backend's memory
    return s.empty() ? transport::MemoryRegion()
                     : transport_->register_memory(s.data(), s.size_bytes(),
                                                   model_.backend().memory_type());
  };
  grads_region_ = register_span(store.grads());
  if (options_.zero1) params_region_ = register_span(store.params());
  if (head_chunk_ >= 0)
    head_wte_region_ =
        register_span({model_.head_wte_grad().data(), model_.head_wte_grad().size()});
  scratch_region_ = device_ ? register_span({device_scratch_.data(), device_scratch_.size()})
                            : register_span(scratch_);
  if (options_.overlap) thread_ = std::thread([this] { worker(); });
}

GradientSync::~GradientSync() {
  bool running = false;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    queue_.clear();
    running = running_;
  }
  cv_.notify_all();
  // A reduction still running means the step failed around it (finish_gradients() waits for
  // every one otherwise). Its ring may wait on replicas that wait for this rank, so the job
  // is failed first, which ends every wait at once instead of at the peer deadline.
  if (running) transport_->abort("this rank's step failed while a gradient all-reduce ran");
  if (thread_.joinable()) thread_.join();
}

uint64_t GradientSync::op_id(int job_index) const {
  // Distinct for every reduction of a step (and from the step's parameter gathers); the ring
  // keeps its low bits in the tags, which only have to differ among reductions in flight.
  const uint64_t per_step = 2 * (plan_.buckets.size() + 1);
  return uint64_t(step_) * per_step + uint64_t(job_index + 1);
}

void GradientSync::begin_step(int64_t step) {
  step_ = step;
  queued_ = 0;
  bucket_queued_.assign(plan_.buckets.size(), false);
  head_queued_ = false;
}

int GradientSync::jobs_per_step() const {
  return static_cast<int>(plan_.buckets.size()) + (head_chunk_ >= 0 ? 1 : 0);
}

void GradientSync::run_job(const Job& job) {
  const double start = trace_clock_us();
  if (!reduce(job) || !options_.record_spans) return;
  const size_t elements =
      job.bucket < 0 ? model_.head_wte_grad().size() : plan_.buckets[size_t(job.bucket)].elements();
  Span span{options_.trace_row,
            job.bucket < 0 ? std::string("all-reduce head wte")
                           : fmt::format("all-reduce bucket {}", job.bucket),
            "allreduce",
            start,
            trace_clock_us() - start,
            options_.trace_row_name};
  span.name += fmt::format(" ({:.2f} MiB)", double(elements * sizeof(float)) / (1 << 20));
  std::lock_guard lock(mu_);
  spans_.push_back(std::move(span));
}

std::vector<Span> GradientSync::take_spans() {
  std::lock_guard lock(mu_);
  return std::exchange(spans_, {});
}

bool GradientSync::reduce(const Job& job) {
  const Deadline deadline = Deadline::after_seconds(options_.wait_timeout_s);
  auto& store = model_.store();
  if (job.bucket < 0) {  // the head's wte gradient, kept apart from the store's
    auto& grad = model_.head_wte_grad();
    const RingRegions regions{if_valid(head_wte_region_), if_valid(scratch_region_),
                              model_.backend().memory_type()};
    if (device_) {
      ring_all_reduce_sum(*transport_, group_, {grad.data(), grad.size()}, op_id(-1),
                          model_.backend(), {device_scratch_.data(), device_scratch_.size()},
                          deadline, regions);
    } else {
      ring_all_reduce_sum(*transport_, group_, {grad.data(), grad.size()}, op_id(-1), scratch_,
                          deadline, {}, regions);
    }
    return true;
  }
  const GradientBucket& b = plan_.buckets[size_t(job.bucket)];
  if (b.tied && !model_.holds_embedding()) return false;  // the tie sets this stage's wte grad
  std::span<float> grads = store.grads().subspan(b.begin, b.elements());
  const RingRegions regions{if_valid(grads_region_), if_valid(scratch_region_),
                            model_.backend().memory_type()};
  if (device_) {
    ring_reduce_scatter(*transport_, group_, grads, b.ring_bounds, op_id(job.bucket),
                        model_.backend(), {device_scratch_.data(), device_scratch_.size()},
                        deadline, regions);
  } else {
    ring_reduce_scatter(*transport_, group_, grads, b.ring_bounds, op_id(job.bucket), scratch_,
                        deadline, regions);
  }
  if (job.bucket == 0 &&
      checkpoint::fault::armed(checkpoint::fault::kKillInAllReduce, step_ + 1, transport_->rank()))
    std::raise(SIGKILL);
  // ZeRO-1 leaves the sums on their owners; a one-parameter bucket (the tied wte among them)
  // is summed whole on every replica (gradient_buckets.h).
  if (!options_.zero1 || b.single())
    ring_all_gather(*transport_, group_, grads, b.ring_bounds, op_id(job.bucket), deadline,
                    regions);
  return true;
}

void GradientSync::worker() {
  model_.backend().bind_thread();  // the rings' copies, and the transport, on this rank's GPU
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    const Job job = queue_.front();
    queue_.pop_front();
    const bool skip = failure_ != nullptr;
    running_ = !skip;
    lock.unlock();
    std::exception_ptr failed;
    if (!skip) {
      try {
        run_job(job);
      } catch (...) {
        failed = std::current_exception();
      }
    }
    lock.lock();
    running_ = false;
    if (failed && !failure_) failure_ = failed;
    --pending_;
    cv_.notify_all();
  }
}

void GradientSync::gradients_done(int chunk, int first_done_param) {
  if (group_.size() == 1 || !options_.overlap) return;
  // The flags are the training thread's own; the queue is shared with the worker.
  std::vector<Job> ready;
  // The head's wte gradient is complete once the head's part of W has run (its first call).
  if (chunk == head_chunk_ && !head_queued_) {
    head_queued_ = true;
    ready.push_back({-1});
  }
  for (size_t b = 0; b < plan_.buckets.size(); ++b) {
    const GradientBucket& bucket = plan_.buckets[b];
    if (bucket.chunk != chunk || bucket_queued_[b] || bucket.first_param < first_done_param)
      continue;
    bucket_queued_[b] = true;
    ready.push_back({static_cast<int>(b)});
  }
  if (ready.empty()) return;
  // The rings read the gradients outside the stream: wait for the kernels writing them, once
  // per batch of buckets that became ready (not per block of W that finished).
  if (device_) model_.backend().synchronize();
  {
    std::lock_guard lock(mu_);
    for (const Job& job : ready) queue_.push_back(job);
    pending_ += static_cast<int>(ready.size());
    queued_ += static_cast<int>(ready.size());
  }
  cv_.notify_all();
}

void GradientSync::finish_gradients() {
  if (group_.size() == 1) return;
  if (!options_.overlap) {
    if (device_) model_.backend().synchronize();  // the rings read what the stream wrote
    for (size_t b = 0; b < plan_.buckets.size(); ++b) run_job({static_cast<int>(b)});
    if (head_chunk_ >= 0) run_job({-1});
    return;
  }
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return pending_ == 0; });
  if (failure_) std::rethrow_exception(std::exchange(failure_, nullptr));
  CONVEYOR_CHECK(queued_ == jobs_per_step(), "step {}: {} of {} gradient reductions were started",
                 step_ + 1, queued_, jobs_per_step());
}

void GradientSync::gather_parameters() {
  if (group_.size() == 1 || !options_.zero1) return;
  const Deadline deadline = Deadline::after_seconds(options_.wait_timeout_s);
  if (device_) model_.backend().synchronize();  // AdamW's updates are complete
  auto params = model_.store().params();
  for (size_t b = 0; b < plan_.buckets.size(); ++b) {
    const GradientBucket& bucket = plan_.buckets[b];
    const uint64_t op = op_id(static_cast<int>(plan_.buckets.size() + 1 + b));
    ring_all_gather(*transport_, group_, params.subspan(bucket.begin, bucket.elements()),
                    bucket.owner_bounds, op, deadline,
                    {if_valid(params_region_), nullptr, model_.backend().memory_type()});
  }
}

}  // namespace conveyor::pipeline
