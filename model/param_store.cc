#include "model/param_store.h"

#include <algorithm>

#include "common/error.h"
#include "model/init.h"

namespace conveyor::model {

ParamStore::ParamStore(std::vector<ParamSpec> specs) : specs_(std::move(specs)) {
  size_t total = 0;
  for (size_t i = 0; i < specs_.size(); ++i) {
    offsets_.push_back(total);
    index_.emplace(specs_[i].name, static_cast<int>(i));
    total += specs_[i].numel();
  }
  params_.assign(total, 0.0f);
  grads_.assign(total, 0.0f);
  exp_avg_.assign(total, 0.0f);
  exp_avg_sq_.assign(total, 0.0f);
}

int ParamStore::index(const std::string& name) const {
  auto it = index_.find(name);
  CONVEYOR_CHECK(it != index_.end(), "parameter '{}' is not held by this stage", name);
  return it->second;
}

void ParamStore::initialize(uint64_t seed) {
  for (size_t i = 0; i < specs_.size(); ++i) {
    init_parameter(specs_[i], seed, params_.data() + offsets_[i]);
  }
  std::fill(grads_.begin(), grads_.end(), 0.0f);
  std::fill(exp_avg_.begin(), exp_avg_.end(), 0.0f);
  std::fill(exp_avg_sq_.begin(), exp_avg_sq_.end(), 0.0f);
}

void ParamStore::zero_grads() {
  std::fill(grads_.begin(), grads_.end(), 0.0f);
}

}  // namespace conveyor::model
