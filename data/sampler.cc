#include "data/sampler.h"

#include <xxhash.h>

#include "common/error.h"

namespace conveyor::data {

namespace {

void require_fits(const Dataset& data, int seq) {
  CONVEYOR_REQUIRE(seq >= 1, "--seq {} must be at least 1", seq);
  if (data.size() < static_cast<size_t>(seq) + 1) {
    throw Error(ErrorKind::kUsage,
                fmt::format("--seq {} is larger than the data ({} tokens)", seq, data.size()),
                "use a smaller --seq or more data");
  }
}

// Copies the window starting at `off`: inputs are seq tokens, targets the same shifted by one.
void copy_window(const Dataset& data, size_t off, int seq, int32_t* inputs, int32_t* targets) {
  data.read(off, static_cast<size_t>(seq), inputs);
  data.read(off + 1, static_cast<size_t>(seq), targets);
}

}  // namespace

size_t sample_offset(const Dataset& data, uint64_t seed, int64_t step, int microbatch, int row,
                     int seq) {
  // Serialise the key explicitly little-endian so offsets are the same on every host.
  const uint64_t key[4] = {seed, static_cast<uint64_t>(step), static_cast<uint64_t>(microbatch),
                           static_cast<uint64_t>(row)};
  unsigned char bytes[sizeof(key)];
  for (size_t k = 0; k < 4; ++k) {
    for (size_t b = 0; b < 8; ++b) bytes[k * 8 + b] = static_cast<unsigned char>(key[k] >> (8 * b));
  }
  const uint64_t h = XXH3_64bits(bytes, sizeof(bytes));
  // size - seq >= 1 possible starts: off + seq <= size - 1, so the last target is in range.
  // (The modulo bias is below 2^-40 for any realistic corpus; not worth rejection sampling.)
  return static_cast<size_t>(h % (data.size() - static_cast<size_t>(seq)));
}

void sample_batch(const Dataset& data, uint64_t seed, int64_t step, int microbatch, int batch,
                  int seq, int32_t* inputs, int32_t* targets) {
  CONVEYOR_REQUIRE(batch >= 1, "--micro-batch-size {} must be at least 1", batch);
  CONVEYOR_REQUIRE(microbatch >= 0, "micro-batch index {} must not be negative", microbatch);
  require_fits(data, seq);
  for (int r = 0; r < batch; ++r) {
    const size_t off = sample_offset(data, seed, step, microbatch, r, seq);
    const size_t row = static_cast<size_t>(r) * static_cast<size_t>(seq);
    copy_window(data, off, seq, inputs + row, targets + row);
  }
}

size_t num_eval_windows(const Dataset& data, int seq) {
  CONVEYOR_REQUIRE(seq >= 1, "--seq {} must be at least 1", seq);
  return data.size() == 0 ? 0 : (data.size() - 1) / static_cast<size_t>(seq);
}

void eval_window(const Dataset& data, size_t window, int seq, int32_t* inputs, int32_t* targets) {
  const size_t n = num_eval_windows(data, seq);
  CONVEYOR_REQUIRE(window < n,
                   "eval window {} is out of range: the data has {} windows of {} tokens", window,
                   n, seq);
  copy_window(data, window * static_cast<size_t>(seq), seq, inputs, targets);
}

}  // namespace conveyor::data
