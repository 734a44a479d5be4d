#include "model/flops.h"

namespace conveyor::model {

double block_training_flops_per_token(const ModelConfig& c) {
  return 6.0 * double(c.parameters_per_layer()) + 12.0 * double(c.dim) * double(c.seq);
}

double head_training_flops_per_token(const ModelConfig& c) {
  return 6.0 * double(c.vocab) * double(c.dim);
}

double training_flops_per_token(const ModelConfig& c) {
  // = 6 N + 12 L d T, term by term (flops.h).
  const double d = c.dim;
  return double(c.layers) * block_training_flops_per_token(c) + head_training_flops_per_token(c) +
         6.0 * (double(c.seq) * d + 2.0 * d);
}

}  // namespace conveyor::model
