// Small statistics over measurements (benchmarks).
#pragma once

#include <algorithm>
#include <vector>

namespace conveyor {

// The middle element of `v` once sorted (the upper of the two middle ones for an even
// count, so it is always one of the measurements); 0 for an empty vector.
inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace conveyor
