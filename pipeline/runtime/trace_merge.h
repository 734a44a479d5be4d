// The end of a traced run (--trace): every rank's part file (TraceStream) becomes one trace on
// the coordinator, without any rank holding its spans in memory or sending them in one
// message. Each rank reads its part back in pieces of kTracePieceBytes and sends them to the
// coordinator (point to point, MessageKind::kTracePart), which appends them in rank order to a
// MergedTraceWriter. Memory stays at one piece per rank, however long the run.
#pragma once

#include <cstddef>
#include <string>

#include "pipeline/runtime/trace.h"

namespace conveyor::transport {
class Transport;
}

namespace conveyor::pipeline {

inline constexpr size_t kTracePieceBytes = size_t{4} << 20;

// Collective over the job's ranks (transport null: one rank). `part` must be closed. The
// coordinator writes `trace_path`; every wait has the peer deadline. The parts stay on disk
// (the caller removes them once this returned everywhere).
void merge_trace_parts(const std::string& trace_path, const TraceStream& part,
                       transport::Transport* transport, int coordinator_rank);

}  // namespace conveyor::pipeline
