// What the launch environment says about this rank: its place in the job, where the
// rendezvous is, the job's token and deadlines (Options), read once by options_from_env().
// The bootstrap (rendezvous service and client) and the transport above it both take it.
#pragma once

#include <string>

#include "common/launch_env.h"

namespace conveyor::transport {

// The largest world: a rank is 14 bits of every UCX tag (transport/tag.h), and one value is
// kept free, so a job has at most kMaxRanks - 1 ranks.
inline constexpr int kMaxRanks = 1 << 14;

struct Options {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;  // index among the ranks on this host (picks the GPU and the NIC)
  std::string world_size_from = kEnvWorldSize;  // the variable it came from, for messages
  // NUMA node of this rank's GPU, for the NIC choice (rdma::pick_net_device); -1: no GPU.
  int gpu_numa_node = -1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string job_token;          // every bootstrap connection must present it
  std::string fingerprint;        // hash of the configuration; every rank must present rank 0's
  double connect_timeout_s = 60;  // rendezvous (all ranks joined, endpoints up)
  // A rank that sends nothing (not even heartbeats) for this long is declared dead.
  // Process death is detected at once (the connection closes); this covers hung nodes.
  double heartbeat_timeout_s = 1.5;
  // UCX's peer error-handling mode (UCP_ERR_HANDLING_MODE_PEER). Off by default: it
  // disables UCX's shared-memory transports (intra-node traffic falls back to TCP
  // loopback). Dead peers are detected through the bootstrap connection either way.
  bool ucx_peer_error_mode = false;
  // A thread that progresses UCX while the rank computes (transport/progress_thread.h), so
  // transfers overlap compute. On by default; CONVEYOR_PROGRESS_THREAD=0 turns it off (to
  // measure what it gives).
  bool progress_thread = true;
  // Where to report "the job failed because of rank N" to the local supervisor: a datagram
  // socket `conveyor launch` hands every rank (transport/job_failure.h). -1: nowhere.
  int failure_report_fd = -1;
};

// Reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT, CONVEYOR_JOB_TOKEN (or the
// Slurm / Open MPI equivalents SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID,
// OMPI_COMM_WORLD_RANK/_SIZE/_LOCAL_RANK), CONVEYOR_RDZV_PORT, CONVEYOR_CONNECT_TIMEOUT,
// CONVEYOR_HEARTBEAT_TIMEOUT, CONVEYOR_UCX_PEER_ERROR_MODE, CONVEYOR_PROGRESS_THREAD,
// CONVEYOR_FAILURE_REPORT_FD.
// Without RANK/WORLD_SIZE (or equivalents) it is a single-rank job. MASTER_ADDR defaults
// to the first host of SLURM_JOB_NODELIST when the rank comes from Slurm, else to
// 127.0.0.1. The rendezvous port is CONVEYOR_RDZV_PORT when set, else MASTER_PORT (plus one
// under torchrun, whose agent holds MASTER_PORT: TORCHELASTIC_RUN_ID is set), else 29500. Throws
// Error(kUsage) for a missing or invalid value (multi-rank job without CONVEYOR_JOB_TOKEN, rank >=
// size, ...).
Options options_from_env(std::string fingerprint);

}  // namespace conveyor::transport
