#include "pipeline/runtime/trace_merge.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "common/file_io.h"
#include "pipeline/runtime/message_tag.h"
#include "transport/transport.h"

namespace conveyor::pipeline {

namespace {

// Reads the next piece of `fd` (empty at the end).
std::string next_piece(int fd, const std::string& path) {
  std::string piece(kTracePieceBytes, '\0');
  size_t got = 0;
  while (got < piece.size()) {
    const ssize_t n = ::read(fd, piece.data() + got, piece.size() - got);
    if (n < 0 && errno == EINTR) continue;
    CONVEYOR_CHECK(n >= 0, "reading trace file '{}' failed: {}", path, std::strerror(errno));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  piece.resize(got);
  return piece;
}

transport::Tag piece_tag(int64_t index, bool bytes) {
  return encode(MessageTag{MessageKind::kTracePart, index, bytes ? 1 : 0, 0});
}

Deadline piece_deadline() {
  return Deadline::after_seconds(kPeerWaitSeconds);
}

}  // namespace

void merge_trace_parts(const std::string& trace_path, const TraceStream& part,
                       transport::Transport* transport, int coordinator_rank) {
  const int rank = transport ? transport->rank() : 0;
  const int world = transport ? transport->world_size() : 1;
  if (rank != coordinator_rank) {
    // Each piece: its length, then (when not zero) its bytes; a zero length ends the part.
    const UniqueFd fd = open_input_file(part.path(), "trace part file");
    for (int64_t index = 0;; ++index) {
      const std::string piece = next_piece(fd.get(), part.path());
      const uint64_t length = piece.size();
      auto sent =
          transport->isend(coordinator_rank, piece_tag(index, false), &length, sizeof length);
      transport->wait(sent, piece_deadline());
      if (length == 0) return;
      sent = transport->isend(coordinator_rank, piece_tag(index, true), piece.data(), length);
      transport->wait(sent, piece_deadline());
    }
  }
  MergedTraceWriter merged(trace_path);
  for (int r = 0; r < world; ++r) {
    merged.begin_part();
    if (r == rank) {
      const UniqueFd fd = open_input_file(part.path(), "trace part file");
      for (std::string piece; !(piece = next_piece(fd.get(), part.path())).empty();)
        merged.add(piece);
      continue;
    }
    std::string piece;
    for (int64_t index = 0;; ++index) {
      uint64_t length = 0;
      auto got = transport->irecv(r, piece_tag(index, false), &length, sizeof length);
      transport->wait(got, piece_deadline());
      if (length == 0) break;
      CONVEYOR_CHECK(length <= kTracePieceBytes, "rank {} sent a trace piece of {} bytes", r,
                     length);
      piece.resize(length);
      got = transport->irecv(r, piece_tag(index, true), piece.data(), length);
      transport->wait(got, piece_deadline());
      merged.add(piece);
    }
  }
  merged.commit();
}

}  // namespace conveyor::pipeline
