// Helpers for the multi-stage integration tests: run `conveyor train` on 1 stage or under
// `conveyor launch` on several, and read back what users read (metrics, samples, logs).
#pragma once

#include <string>
#include <vector>

#include "tests/test_util.h"

namespace conveyor::test {

// `conveyor train <train_args> --stages N`, plain for N == 1, else under
// `conveyor launch --nproc N`.
RunResult train_on(int stages, const std::vector<std::string>& train_args, double timeout_s = 120);

// Output lines with a "[rank R] " prefix removed; `rank` receives R, or -1 without prefix.
std::string strip_rank_prefix(const std::string& line, int* rank);

// The text of `--sample N` ("--- sample (N characters) ---" ... "---"), from plain or
// launched output (only the lines of the rank that printed the header). Empty if none.
std::string sample_text(const std::string& output);

}  // namespace conveyor::test
