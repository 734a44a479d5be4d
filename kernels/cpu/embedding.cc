// Token + position embedding.
#include <cstddef>

#include "kernels/cpu/ops.h"

namespace conveyor::cpu {

void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B,
                       int T, int C) {
  for (int b = 0; b < B; ++b) {
    for (int t = 0; t < T; ++t) {
      const size_t row = static_cast<size_t>(b) * T + t;
      float* o = out + row * C;
      const float* e = wte + static_cast<size_t>(tokens[row]) * C;
      const float* p = wpe + static_cast<size_t>(t) * C;
      for (int i = 0; i < C; ++i) o[i] = e[i] + p[i];
    }
  }
}

void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B,
                        int T, int C) {
  // Ascending (b, t): a token that occurs twice gets its contributions in a fixed order.
  for (int b = 0; b < B; ++b) {
    for (int t = 0; t < T; ++t) {
      const size_t row = static_cast<size_t>(b) * T + t;
      const float* d = dout + row * C;
      float* ge = dwte + static_cast<size_t>(tokens[row]) * C;
      float* gp = dwpe + static_cast<size_t>(t) * C;
      for (int i = 0; i < C; ++i) {
        ge[i] += d[i];
        gp[i] += d[i];
      }
    }
  }
}

}  // namespace conveyor::cpu
