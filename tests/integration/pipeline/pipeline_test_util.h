// Helpers for the multi-stage integration tests: run `conveyor train` on 1 stage or under
// `conveyor launch` on several, and read back what users read (metrics, samples, logs).
#pragma once

#include <string>
#include <vector>

#include "tests/test_util.h"

namespace conveyor::test {

// Appends `more` to `args`.
std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& more);

// `conveyor train <train_args> --stages N`, plain for N == 1, else under
// `conveyor launch --nproc N`.
RunResult train_on(int stages, const std::vector<std::string>& train_args, double timeout_s = 120);

// The raw text of every "loss" in a metrics file (%.9g round-trips a float: equal text is
// equal bits). Fails the test when a line is not valid JSON.
std::vector<std::string> loss_texts(const std::string& metrics_path);

// The raw text of `key` in every metrics line that has it (e.g. "val_loss" rows).
std::vector<std::string> field_texts(const std::string& metrics_path, const std::string& key);

// Output lines with a "[rank R] " prefix removed; `rank` receives R, or -1 without prefix.
std::string strip_rank_prefix(const std::string& line, int* rank);

// The text of `--sample N` ("--- sample (N characters) ---" ... "---"), from plain or
// launched output (only the lines of the rank that printed the header). Empty if none.
std::string sample_text(const std::string& output);

}  // namespace conveyor::test
