// Row reductions in the CPU kernels' order (cpu::detail::lane_sum, lane_dot, lane_max in
// kernels/cpu/vec_math.h), so rows reduced here give the CPU's bits.
//
// A row belongs to 16 threads (half a warp). Lane l owns the elements j with j % 16 == l and
// visits them in increasing j, which is the CPU's partial sum acc[l]; the 16 partials then
// combine as acc[l] += acc[l + w] for w = 8, 4, 2, 1, the CPU's tree. For the maximum, lane 0
// takes lanes 1..15 in order. Every thread of the warp must reach the shuffles, so kernels
// keep threads of rows past the end alive (inactive) until after the last reduction.
#pragma once

#include <cstddef>

namespace conveyor::cuda_kernels {

inline constexpr int kLanes = 16;
inline constexpr int kRowThreads = 256;  // 16 rows per block
inline constexpr unsigned kFullMask = 0xffffffffu;

struct RowLane {
  size_t row;
  int lane;
};

__device__ __forceinline__ RowLane row_lane() {
  const size_t t = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  return {t / kLanes, static_cast<int>(t % kLanes)};
}

inline unsigned row_blocks(size_t rows) {
  return static_cast<unsigned>((rows * kLanes + kRowThreads - 1) / kRowThreads);
}

// The row's total, in every lane, from each lane's partial sum.
__device__ __forceinline__ float lanes_total(float acc) {
  for (int w = kLanes / 2; w >= 1; w /= 2) acc += __shfl_down_sync(kFullMask, acc, w, kLanes);
  return __shfl_sync(kFullMask, acc, 0, kLanes);
}

// Max that keeps a NaN once it has seen one (cpu::detail::max_keep_nan).
__device__ __forceinline__ float max_keep_nan(float a, float v) {
  return (v > a || v != v) ? v : a;
}

// max of x[0..n), n >= 1, in every lane; `active` false: a row past the end (returns 0).
__device__ __forceinline__ float row_max(const float* x, size_t n, int lane, bool active) {
  float acc = active ? x[0] : 0.0f;
  if (active)
    for (size_t j = lane; j < n; j += kLanes) acc = max_keep_nan(acc, x[j]);
  float m = __shfl_sync(kFullMask, acc, 0, kLanes);
  for (int l = 1; l < kLanes; ++l) m = max_keep_nan(m, __shfl_sync(kFullMask, acc, l, kLanes));
  return m;
}

}  // namespace conveyor::cuda_kernels
