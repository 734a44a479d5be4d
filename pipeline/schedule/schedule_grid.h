// Text and trace renderings of a schedule.
//
//   render_grid       one row per stage, one column per time unit of a simulation
//   render_step_grid  one row per stage, one column per position in the stage's action list
//                     (what the validator prints, with faulty cells marked)
//   simulation_spans  the simulated timeline as trace spans (see span.h)
//
// Cell labels: F3, B3, W3, BW3 for micro-batch 3; with virtual stages the chunk follows
// after a dot (F3.1 = micro-batch 3 on chunk 1). Idle time is '.'; an action longer than
// one column shows its label in its first column and '-' in the rest.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "pipeline/schedule/schedule.h"
#include "pipeline/schedule/schedule_validator.h"
#include "pipeline/schedule/span.h"

namespace conveyor::pipeline {

std::string action_label(const Schedule& schedule, const Action& action);

// Column width = the shortest action duration in `result`, so unit costs give one column
// per action unit.
std::string render_grid(const Schedule& schedule, const SimulationResult& result);

// `marked`: (stage, index into actions[stage]) cells drawn as [label].
std::string render_step_grid(const Schedule& schedule,
                             const std::vector<std::pair<int, int>>& marked = {});

// Spans named by action_label, category "forward", "backward", "backward-input" or
// "backward-weight", tid = stage; one simulated time unit = `us_per_unit` microseconds.
std::vector<Span> simulation_spans(const Schedule& schedule, const SimulationResult& result,
                                   double us_per_unit = 1000.0);

}  // namespace conveyor::pipeline
