// TEST HOOK: deterministic faults in the middle of a checkpoint save, so the crash and failure
// tests (tests/integration/checkpoint/) can stop a real training process at an exact point of
// the commit protocol. Driven by environment variables that only those tests set; when none is
// set (always, outside tests) a hook costs one getenv per save and does nothing.
//
//   CONVEYOR_FAULT_KILL_IN_SAVE=STEP[:STAGE]     write_shard of STEP: SIGKILL after half of
//                                                 the parameter datasets are written
//   CONVEYOR_FAULT_FAIL_SAVE=STEP[:STAGE]        write_shard of STEP throws Error(kRuntime)
//   CONVEYOR_FAULT_KILL_BEFORE_COMMIT=STEP       commit_step of STEP: SIGKILL with every shard
//                                                 and the manifest written, before the rename
//   CONVEYOR_FAULT_KILL_AFTER_COMMIT=STEP        commit_step of STEP: SIGKILL after the rename
//                                                 (the commit point), before LATEST is replaced
//   CONVEYOR_FAULT_SLOW_SNAPSHOT=STEP[:STAGE]    async save of STEP: the background thread
//                                                 waits 300 ms before copying the snapshot
//                                                 (holds open the window in which the next
//                                                 optimizer update must wait for the copy)
//
// Without ":STAGE" the fault fires on every stage that reaches the point.
#pragma once

#include <cstdint>

namespace conveyor::checkpoint::fault {

// True when environment variable `var` is set and names `step` (and `stage`, if it names one).
bool armed(const char* var, int64_t step, int stage = -1);

// Logs which hook fired, then raise(SIGKILL): the process dies as if killed from outside,
// with no destructor, flush or clean-up running.
[[noreturn]] void kill_self(const char* var, int64_t step);

}  // namespace conveyor::checkpoint::fault
