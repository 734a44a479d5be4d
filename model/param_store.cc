#include "model/param_store.h"

#include <vector>

#include "common/error.h"
#include "model/init.h"

namespace conveyor::model {

ParamStore::ParamStore(kernels::Backend& backend, std::vector<ParamSpec> specs,
                       std::vector<bool> moments_kept)
    : backend_(backend), specs_(std::move(specs)) {
  CONVEYOR_CHECK(moments_kept.empty() || moments_kept.size() == specs_.size(),
                 "{} moment flags for {} parameters", moments_kept.size(), specs_.size());
  size_t total = 0, moments = 0;
  for (size_t i = 0; i < specs_.size(); ++i) {
    offsets_.push_back(total);
    index_.emplace(specs_[i].name, static_cast<int>(i));
    total += specs_[i].numel();
    const bool mine = moments_kept.empty() || moments_kept[i];
    moment_offsets_.push_back(mine ? moments : kNoMoments);
    if (mine) moments += specs_[i].numel();
  }
  params_ = backend_.alloc<float>(total);  // zero-filled
  grads_ = backend_.alloc<float>(total);
  exp_avg_ = backend_.alloc<float>(moments);
  exp_avg_sq_ = backend_.alloc<float>(moments);
}

int ParamStore::index(const std::string& name) const {
  auto it = index_.find(name);
  CONVEYOR_CHECK(it != index_.end(), "parameter '{}' is not held by this stage", name);
  return it->second;
}

void ParamStore::initialize(uint64_t seed) {
  std::vector<float> host;  // initial values are drawn on the host, then copied over
  for (size_t i = 0; i < specs_.size(); ++i) {
    host.resize(specs_[i].numel());
    init_parameter(specs_[i], seed, host.data());
    backend_.from_host(params_.data() + offsets_[i], host.data(), host.size() * sizeof(float));
  }
  backend_.zero(grads_.data(), grads_.bytes());
  backend_.zero(exp_avg_.data(), exp_avg_.bytes());
  backend_.zero(exp_avg_sq_.data(), exp_avg_sq_.bytes());
}

void ParamStore::zero_grads() {
  backend_.zero(grads_.data(), grads_.bytes());
}

}  // namespace conveyor::model
