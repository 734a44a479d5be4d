// TEST HOOK: deterministic faults in the middle of a checkpoint save, so the crash and failure
// tests (tests/integration/checkpoint/) can stop a real training process at an exact point of
// the commit protocol; and one in a training step (a diverged gradient).
//
// Production code asks armed(point, step, stage) at each point; the answer comes from the
// FaultHooks installed for the process, and is one atomic load when none are (always, outside
// tests). Nothing in the libraries reads the environment for faults: the `conveyor` binary
// (launcher/main.cc) reads the variables below once at start-up and installs them; unit tests
// may install hooks directly. Each point is named by its variable, whose value is
// STEP[:STAGE]:
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
//   CONVEYOR_FAULT_NAN_GRADIENT=STEP[:STAGE]     training step STEP (1-based): after the
//                                                 backward pass, the stage's first gradient
//                                                 element becomes NaN (a diverged step)
//   CONVEYOR_FAULT_KILL_IN_ALL_REDUCE=STEP[:RANK] training step STEP (1-based): SIGKILL in
//                                                 the middle of the data-parallel gradient
//                                                 all-reduce (after a bucket's reduce-scatter,
//                                                 before its all-gather); its number is a RANK
//   CONVEYOR_FAULT_STOP_IN_VALIDATION=STEP[:STAGE] the validation after step STEP: the rank
//                                                 sends itself SIGTERM before its first batch
//                                                 (a preemption that lands mid-validation)
//   CONVEYOR_FAULT_STOP_IN_SAMPLE=TOKEN[:STAGE]   --sample generation: SIGTERM to itself
//                                                 before token TOKEN (0-based) is drawn
//
// Without ":STAGE" the fault fires on every stage that reaches the point.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace conveyor::checkpoint::fault {

inline constexpr const char* kKillInSave = "CONVEYOR_FAULT_KILL_IN_SAVE";
inline constexpr const char* kFailSave = "CONVEYOR_FAULT_FAIL_SAVE";
inline constexpr const char* kKillBeforeCommit = "CONVEYOR_FAULT_KILL_BEFORE_COMMIT";
inline constexpr const char* kKillAfterCommit = "CONVEYOR_FAULT_KILL_AFTER_COMMIT";
inline constexpr const char* kSlowSnapshot = "CONVEYOR_FAULT_SLOW_SNAPSHOT";
inline constexpr const char* kNanGradient = "CONVEYOR_FAULT_NAN_GRADIENT";
inline constexpr const char* kKillInAllReduce = "CONVEYOR_FAULT_KILL_IN_ALL_REDUCE";
inline constexpr const char* kStopInValidation = "CONVEYOR_FAULT_STOP_IN_VALIDATION";
inline constexpr const char* kStopInSample = "CONVEYOR_FAULT_STOP_IN_SAMPLE";
inline constexpr std::array<const char*, 9> kPoints = {
    kKillInSave,  kFailSave,        kKillBeforeCommit, kKillAfterCommit, kSlowSnapshot,
    kNanGradient, kKillInAllReduce, kStopInValidation, kStopInSample};

// Which points are armed, and at which step (and stage). Empty by default: nothing fires.
class FaultHooks {
 public:
  // Arms `point` from a "STEP[:STAGE]" value (as the variables above hold). A value that does
  // not start with a step number arms nothing and returns false.
  bool arm(std::string_view point, const std::string& spec);
  // Arms `point` at `step`, on `stage` only, or on every stage when stage < 0.
  void arm(std::string_view point, int64_t step, int stage = -1);

  // True when `point` is armed at `step`, and at `stage` if the trigger names one (a caller
  // that passes no stage matches any trigger of the step).
  bool armed(std::string_view point, int64_t step, int stage = -1) const;
  bool empty() const { return triggers_.empty(); }

 private:
  struct Trigger {
    std::string point;
    int64_t step = 0;
    bool any_stage = true;
    long stage = 0;
  };
  std::vector<Trigger> triggers_;
};

// Makes `hooks` the process's hooks, replacing any installed before. Call at start-up (or
// in a test, between saves), never while a save may be running on another thread.
void install(FaultHooks hooks);

// The installed hooks' answer for `point` (one of kPoints); false when none are installed.
bool armed(const char* point, int64_t step, int stage = -1);

// Logs which hook fired, then raise(SIGKILL): the process dies as if killed from outside,
// with no destructor, flush or clean-up running.
[[noreturn]] void kill_self(const char* point, int64_t step);

}  // namespace conveyor::checkpoint::fault
