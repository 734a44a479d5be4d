// Validates a Schedule by simulating every stage at once, and measures its bubble.
//
// The simulation is event-driven with zero communication time: an action starts as soon as
// its stage is free and the action it depends on has finished on whichever stage ran it
// (F needs F of the previous virtual stage; B/BW needs the input gradient of the next
// virtual stage and its own F; W needs its own B). A BW's input gradient is ready after its
// B part, as the executor runs it (stage_program: B, the send, then W), so the simulation
// predicts the executor's step, not the textbook's atomic backward. Start times are the
// as-soon-as-possible times and do not depend on the order in which the simulator visits
// stages.
//
// A schedule is rejected (Error kRuntime: a bad schedule is a program bug, not user input)
// when it
//   - names a micro-batch or chunk out of range                       ("invalid action")
//   - misses an F, a BW, or a B/W of some (micro-batch, chunk)        ("missing action")
//   - runs one twice, or mixes BW with B/W for one (mb, chunk)        ("duplicate action")
//   - runs B/BW before its F, or W before its B, on its stage         ("broken dependency")
//   - holds more activations than Schedule::max_inflight promises     ("too many activations in
//   flight")
//   - runs weight-gradient work of a chunk out of micro-batch order   ("weight gradients out of
//   order")
//   - reaches a state where no stage can progress                     ("deadlock")
// The message names the fault and includes the step x stage grid with the fault marked.
//
// Pure and single-threaded; cost O(actions * stages).
#pragma once

#include <optional>
#include <vector>

#include "pipeline/schedule/schedule.h"

namespace conveyor::pipeline {

// Time of one action, in arbitrary units (unit costs by default). BW costs b + w.
struct Costs {
  double f = 1, b = 1, w = 1;
  double of(Op op) const;
};

struct ActionTime {
  double start = 0, end = 0;
};

struct SimulationResult {
  double makespan = 0;                         // end of the last action
  std::vector<double> busy;                    // [stage] sum of action durations
  double bubble = 0;                           // (makespan*p - sum busy) / (makespan*p)
  std::vector<std::vector<ActionTime>> times;  // [stage][i], parallel to Schedule::actions
  std::vector<int> peak_inflight;              // [stage] max activations held (F done, W not)
  std::vector<int> peak_pending_weight;        // [stage] max B done whose W is not yet done
};

// Throws Error(kUsage) for negative or non-finite costs, Error(kRuntime) for a bad schedule.
SimulationResult validate_schedule(const Schedule& schedule, const Costs& costs = {});

// The bubble fraction theory predicts, with per-action costs `costs` (each action of a chunk
// costs the same; a chunk is 1/v of a stage's layers):
//   gpipe, 1f1b:  (p-1) / (m+p-1)                      the textbook's, with an atomic backward;
//                                                      the simulation meets it when w = 0 and
//                                                      is below it when w > 0 (the gradient
//                                                      leaves before W)
//   interleaved:  (p-1) / (v*m+p-1)                    the same, in chunk-action units
//   zb-h1:        (p-1)(f+b-w) / (m(f+b+w) + (p-1)(f+b-w))
//                 (Zero Bubble paper; exact in the simulation for f = b = w and m >= p,
//                  where it is about a third of 1F1B's; clamped at 0 when w > f + b)
//   zb-v, dualpipe-v: none (no closed form; the simulation is the prediction)
std::optional<double> theoretical_bubble(ScheduleKind kind, int stages, int microbatches,
                                         int virtual_stages, const Costs& costs = {});

}  // namespace conveyor::pipeline
