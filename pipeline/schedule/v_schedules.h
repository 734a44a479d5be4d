// The V-shaped zero-bubble schedules: each stage holds two virtual stages, s and 2p-1-s
// (Topology's Placement::kV), so a micro-batch runs down the stages on chunk 0 and back up
// them on chunk 1. Both orders equal PyTorch's, action for action (torch/distributed/
// pipelining/schedules.py at commit 00722e648b740f91d0e71494baa17891749fd291; the test
// tests/unit/pipeline/v_schedules_test.cc compares them with a port of that code).
//
//   zb-v (ScheduleZBVZeroBubble; Zero Bubble paper, section 6): split backward (B and W).
//     Warm-up: 2(p-s)-1 forwards on chunk 0, s pairs of forwards (chunk 1, chunk 0), p-s
//     triples F B W on chunk 1; steady: F0 B0 W0 F1 B1 W1 until every forward has run;
//     cool-down: s pairs B0 B1, p-s pairs B0 W0, the remaining W's of chunk 1, then chunk 0.
//     Computed for max(2p-1, m) micro-batches; the actions of micro-batches >= m are
//     dropped (PyTorch leaves them idle). Any m >= 1.
//   dualpipe-v (ScheduleDualPipeV; DeepSeek's dualpipev.py): forwards, then pairs of a
//     forward on one chunk and a full backward (BW) on the other, which DualPipe overlaps on
//     a GPU and conveyor runs as the forward then the backward; the last pairs split the
//     backward into B and a W taken later from a first-in first-out queue. Needs m >= 2p
//     (PyTorch refuses fewer: the steady phase would have a negative length on stage 0).
//
// Both keep the determinism rule (each chunk's weight gradients in ascending micro-batch
// order). Activations held (F done, W not, in chunk units) are walked from the order:
// max_inflight() reports the walked peak and the validator checks it.
#pragma once

#include "pipeline/schedule/schedule.h"

namespace conveyor::pipeline {

// Fill s.actions; s.kind, s.stages, s.microbatches and s.virtual_stages == 2 are set.
void build_zb_v(Schedule& s);
void build_dualpipe_v(Schedule& s);

}  // namespace conveyor::pipeline
