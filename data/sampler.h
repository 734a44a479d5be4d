// The deterministic sampler: which tokens each micro-batch trains on.
//
// sample_batch is a pure function of (data, seed, step, microbatch, row): it keeps no state,
// so a resumed run sees exactly the batches it would have seen, and the batches do not depend
// on how many stages or processes there are (DESIGN.md, Determinism). First and last stage
// both call it for the same arguments and get the same inputs and targets.
//
// All functions are thread-safe (they only read the Dataset) and do not allocate.
#pragma once

#include <cstddef>
#include <cstdint>

#include "data/dataset.h"

namespace conveyor::data {

// Start offset of row `row` of micro-batch `microbatch` of step `step`:
//   XXH3_64bits(little-endian uint64 [seed, step, microbatch, row]) % (data.size() - seq).
// Exposed so tests and tools can check which window a row reads.
// REQUIRES: data.size() >= seq + 1 (sample_batch checks it).
size_t sample_offset(const Dataset& data, uint64_t seed, int64_t step, int microbatch, int row,
                     int seq);

// Fills inputs[batch*seq] and targets[batch*seq] (row-major [batch, seq]) for micro-batch
// `microbatch` of step `step`: row r reads the window at off = sample_offset(..., r, seq),
// inputs = tokens[off .. off+seq-1], targets = tokens[off+1 .. off+seq].
// Throws conveyor::Error(kUsage) if batch < 1, seq < 1, microbatch < 0, or the data has fewer
// than seq+1 tokens.
void sample_batch(const Dataset& data, uint64_t seed, int64_t step, int microbatch, int batch,
                  int seq, int32_t* inputs, int32_t* targets);

// Evaluation walks the data in order, without overlap: window i has
// inputs tokens[i*seq .. i*seq+seq-1] and targets tokens[i*seq+1 .. i*seq+seq].
// num_eval_windows = (size-1)/seq (0 when the data is shorter than seq+1).
// Throws kUsage if seq < 1.
size_t num_eval_windows(const Dataset& data, int seq);

// Fills inputs[seq] and targets[seq] with eval window `window`.
// Throws kUsage if seq < 1 or window >= num_eval_windows(data, seq).
void eval_window(const Dataset& data, size_t window, int seq, int32_t* inputs, int32_t* targets);

}  // namespace conveyor::data
