// One stage's parameters: four contiguous float buffers (params, grads, AdamW exp_avg and
// exp_avg_sq) in the compute backend's memory, laid out by walking a slice of the global
// parameter table in order.
//
// With ZeRO-1 (pipeline/parallel/gradient_sync.h) a store keeps AdamW moments only for the
// parameters its replica updates; the moment buffers then hold those parameters only, in the same
// order.
//
// Buffers never move after construction, so their addresses can be registered with the
// transport once. The spans point into backend memory (host memory on the cpu backend).
// Not thread-safe; one stage process owns one store.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/backend.h"
#include "model/param_table.h"

namespace conveyor::model {

class ParamStore {
 public:
  // REQUIRES: `specs` is a subsequence of parameter_table() (global order), names unique.
  // `backend` allocates the buffers and must outlive the store. `moments_kept[i]` says
  // whether parameter i has AdamW moments here (empty: every parameter has).
  ParamStore(kernels::Backend& backend, std::vector<ParamSpec> specs,
             std::vector<bool> moments_kept = {});

  kernels::Backend& backend() const { return backend_; }
  const std::vector<ParamSpec>& specs() const { return specs_; }
  size_t total() const { return params_.size(); }
  bool has(const std::string& name) const { return index_.contains(name); }
  // Index of `name` in specs(); throws Error(kRuntime) when absent.
  int index(const std::string& name) const;
  size_t offset(int i) const { return offsets_[i]; }

  float* param(const std::string& name) { return params_.data() + offset(index(name)); }
  float* grad(const std::string& name) { return grads_.data() + offset(index(name)); }

  std::span<float> params() { return {params_.data(), params_.size()}; }
  std::span<float> grads() { return {grads_.data(), grads_.size()}; }
  std::span<float> exp_avg() { return {exp_avg_.data(), exp_avg_.size()}; }
  std::span<float> exp_avg_sq() { return {exp_avg_sq_.data(), exp_avg_sq_.size()}; }
  std::span<float> param(int i) { return {params_.data() + offsets_[i], specs_[i].numel()}; }
  std::span<float> grad(int i) { return {grads_.data() + offsets_[i], specs_[i].numel()}; }
  // Parameter i's moments; empty when it has none here (has_moments(i) false).
  bool has_moments(int i) const { return moment_offsets_[i] != kNoMoments; }
  size_t moment_offset(int i) const { return moment_offsets_[i]; }
  std::span<float> exp_avg(int i) { return moments(exp_avg_, i); }
  std::span<float> exp_avg_sq(int i) { return moments(exp_avg_sq_, i); }

  // Initialises every parameter from (seed, name); zeroes grads and optimizer state.
  void initialize(uint64_t seed);
  void zero_grads();

 private:
  kernels::Backend& backend_;
  std::vector<ParamSpec> specs_;
  static constexpr size_t kNoMoments = SIZE_MAX;
  std::span<float> moments(kernels::Buffer<float>& buf, int i) {
    if (!has_moments(i)) return {};
    return {buf.data() + moment_offsets_[i], specs_[i].numel()};
  }

  std::vector<size_t> offsets_, moment_offsets_;
  std::unordered_map<std::string, int> index_;
  kernels::Buffer<float> params_, grads_, exp_avg_, exp_avg_sq_;
};

}  // namespace conveyor::model
