// Checkpoints of a multi-host job need one directory that every rank sees: each stage writes
// its shard into it and rank 0 commits them. A --ckpt-dir that is local to each host would
// "work" on every host and leave no complete checkpoint anywhere, so this is checked at
// start-up, before anything is trained.
#pragma once

#include <string>

#include "common/clock.h"
#include "transport/transport.h"

namespace conveyor::pipeline {

// Collective (every rank calls it, after the coordinator holds the directory's lock): the
// coordinator writes a fresh nonce to <dir>/.shared-check, every rank reads it back, and the
// file is removed. Throws Error(kUsage) on every rank, naming the ranks (and their hosts)
// that do not see it, when any does not.
void require_shared_directory(const std::string& dir, transport::Transport& transport,
                              int coordinator_rank, Deadline deadline);

}  // namespace conveyor::pipeline
