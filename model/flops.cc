#include "model/flops.h"

namespace conveyor::model {

double training_flops_per_token(const ModelConfig& c) {
  const double n = double(c.num_parameters());
  return 6.0 * n + 12.0 * double(c.layers) * double(c.dim) * double(c.seq);
}

}  // namespace conveyor::model
