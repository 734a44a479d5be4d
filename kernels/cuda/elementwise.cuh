// Launch shape for element-wise kernels: a grid-stride loop over [0, n). Element-wise results
// do not depend on which thread computes them, so the shape is free to follow n.
#pragma once

#include <cstddef>

namespace conveyor::cuda_kernels {

inline constexpr int kElementThreads = 256;

inline unsigned element_blocks(size_t n) {
  const size_t blocks = (n + kElementThreads - 1) / kElementThreads;
  return static_cast<unsigned>(blocks < 65535 * 32 ? blocks : 65535 * 32);
}

#define CONVEYOR_FOR_EACH_ELEMENT(i, n)                                                \
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<size_t>(gridDim.x) * blockDim.x)

}  // namespace conveyor::cuda_kernels
