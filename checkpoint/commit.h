// Committing a checkpoint step written by every rank, retention, and crash clean-up.
// Knows files and directories only; the caller provides the ordering (a barrier between
// every rank's write_shard() and the one commit_step() call).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace conveyor::checkpoint {

// Called by ONE process after all num_shards shards of `step` are in <root>/.tmp-step_N.
// Reads the shards' sidecars, checks that every shard is present, complete and consistent,
// writes manifest.json (temp + fsync + rename), removes the sidecars, fsyncs the directory,
// renames .tmp-step_N -> step_N (the commit point) and fsyncs root, replaces <root>/LATEST
// atomically, then applies retention (see apply_retention).
// A committed step_N that already exists (an older run's, e.g. after a fallback to an older
// step) is replaced. Blocking. Throws Error(kRuntime) naming the missing or bad shard; then
// nothing is committed and LATEST is unchanged.
void commit_step(const std::filesystem::path& root, int64_t step, int num_shards,
                 const nlohmann::json& config, const std::string& fingerprint, int keep);

// Keeps the `keep` newest committed steps (by step number) and deletes the others; keep <= 0
// keeps all. `protect` (the step just committed) is never deleted, nor is the newest.
// Each deleted step is first renamed to a ".tmp-" name, so a crash never leaves a half-deleted
// step_N that looks committed. Returns the deleted steps.
std::vector<int64_t> apply_retention(const std::filesystem::path& root, int keep, int64_t protect);

// Moves every committed step newer than `step` to <root>/abandoned/step_NNNNNNNNN (adding
// ".1", ".2", ... when that name is taken), logging a warning for each: a run that resumes
// from `step` (0: starts afresh) continues another timeline, and a later fallback must never
// land in the abandoned one. If LATEST named a moved step it is pointed at `step` (or removed
// when <root> has no such step). Call from one process, at start-up, before any rank saves.
// Returns the steps moved. Throws Error(kRuntime) when a rename fails.
std::vector<int64_t> move_aside_steps_after(const std::filesystem::path& root, int64_t step);

// Removes everything under root whose name starts with ".tmp-" (steps whose commit never
// happened, steps being deleted) and a stray LATEST.tmp. Call once at start-up, from one
// process, before any rank calls begin_step(). Returns how many entries it removed.
int remove_stale_temp_dirs(const std::filesystem::path& root);

}  // namespace conveyor::checkpoint
