// GELU, GPT-2's tanh approximation, and the residual add. The per-element formulas are in
// kernels/scalar_math.h, shared with the CUDA kernels; they keep the loops vectorised and
// bit-reproducible.
#include <cstddef>

#include "kernels/cpu/ops.h"
#include "kernels/cpu/parallel.h"
#include "kernels/scalar_math.h"

namespace conveyor::cpu {

namespace {
constexpr size_t kChunk = 16384;  // elements per task
}

void gelu_forward(float* out, const float* inp, size_t n) {
  detail::parallel_rows(n, kChunk, [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i) out[i] = kernels::scalar::gelu(inp[i]);
  });
}

void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n) {
  detail::parallel_rows(n, kChunk, [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i) dinp[i] += kernels::scalar::gelu_grad(inp[i]) * dout[i];
  });
}

void residual_forward(float* out, const float* a, const float* b, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

}  // namespace conveyor::cpu
