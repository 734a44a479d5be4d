// `conveyor bench checkpoint`: checkpoint write throughput next to `dd ... conv=fsync` on the
// same file system, and the training stall of async saves next to synchronous ones.
//
// Prints two JSON lines on stdout:
//   {"bench": "checkpoint_write", "bytes", "save_MBps", "write_MBps", "dd_MBps", "ratio"}
//     save: begin_step + write_shard + commit_step of one stage-sized shard (params and both
//     Adam moments, N MiB in all, random-looking floats), median of --repeats;
//     write: the same buffers with write(2) + fsync (the fair baseline: real data);
//     dd: `dd if=/dev/zero bs=4M count=... conv=fsync` (the outside reference);
//     ratio = save_MBps / dd_MBps.
//   {"bench": "checkpoint_stall", ...}  (skipped with --no-stall)
//     three 1-stage training runs of the same model per repeat: saving only at the end (base),
//     every K steps synchronously, and every K steps with --async-save. Step boundaries are
//     timed by the arrival of each metrics line; the extra time per save over base, from the
//     first save to the step before the final one, is the stall (medians of --repeats);
//     stall_ratio = async / sync (target <= 0.10).
// Blocking; writes only under --dir (default: a fresh folder in $TMPDIR), removed afterwards.
#pragma once

#include "bench/bench_command.h"

namespace conveyor::cli {

void add_bench_checkpoint(CLI::App& bench, BenchRunner& run);

}  // namespace conveyor::cli
