#include "kernels/adamw.h"

#include <cmath>

namespace conveyor::kernels {

scalar::AdamWScalars adamw_scalars(const AdamWParams& hp) {
  const double beta1 = hp.beta1, beta2 = hp.beta2;
  return {.b1 = hp.beta1,
          .b2 = hp.beta2,
          .lr = hp.lr,
          .eps = hp.eps,
          .wd = hp.weight_decay,
          .bc1 = static_cast<float>(1.0 - std::pow(beta1, hp.step)),
          .bc2 = static_cast<float>(1.0 - std::pow(beta2, hp.step))};
}

}  // namespace conveyor::kernels
