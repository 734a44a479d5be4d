// Linear layer on OpenBLAS sgemm. Weights are [OC, IC] (PyTorch layout).
//
// Each gemm is cut into row blocks of the output whose size depends only on the shape
// (detail::parallel_rows); every block is one single-threaded sgemm call, so each output
// element is computed the same way whatever the thread counts.
#include <cblas.h>

#include <cstddef>
#include <cstring>

#include "kernels/cpu/ops.h"
#include "kernels/cpu/parallel.h"

namespace conveyor::cpu {

namespace {
constexpr size_t kMinRows = 64;  // below this, packing overhead beats the parallel gain
}

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int N,
                    int IC, int OC) {
  if (N <= 0 || OC <= 0) return;
  detail::blas_single_thread();
  detail::parallel_rows(N, kMinRows, [&](size_t r0, size_t r1) {
    float* o = out + r0 * OC;
    const int rows = static_cast<int>(r1 - r0);
    if (IC <= 0) {  // empty sum: sgemm rejects a zero leading dimension
      std::memset(o, 0, sizeof(float) * rows * OC);
    } else {
      const float* x = inp + r0 * IC;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, OC, IC, 1.0f, x, IC, weight, IC,
                  0.0f, o, OC);
    }
    if (bias != nullptr) {
      for (size_t n = r0; n < r1; ++n) {
        float* row = out + n * OC;
        for (int j = 0; j < OC; ++j) row[j] += bias[j];
      }
    }
  });
}

void linear_backward_input(float* dinp, const float* dout, const float* weight, int N, int IC,
                           int OC) {
  if (N <= 0 || IC <= 0 || OC <= 0) return;
  detail::blas_single_thread();
  detail::parallel_rows(N, kMinRows, [&](size_t r0, size_t r1) {
    // beta = 1 accumulates into dinp.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(r1 - r0), IC, OC, 1.0f,
                dout + r0 * OC, OC, weight, IC, 1.0f, dinp + r0 * IC, IC);
  });
}

void linear_backward_weight(float* dweight, float* dbias, const float* dout, const float* inp,
                            int N, int IC, int OC) {
  if (N <= 0 || OC <= 0) return;
  detail::blas_single_thread();
  // Blocks of output channels: rows [o0, o1) of dweight and entries [o0, o1) of dbias.
  detail::parallel_rows(OC, 32, [&](size_t o0, size_t o1) {
    const int cols = static_cast<int>(o1 - o0);
    if (IC > 0) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cols, IC, N, 1.0f, dout + o0, OC, inp,
                  IC, 1.0f, dweight + o0 * IC, IC);
    }
    if (dbias != nullptr) {
      // Rows in ascending order, added straight into dbias; the loop over channels vectorises.
      for (int n = 0; n < N; ++n) {
        const float* d = dout + static_cast<size_t>(n) * OC;
        for (size_t j = o0; j < o1; ++j) dbias[j] += d[j];
      }
    }
  });
}

}  // namespace conveyor::cpu
