// The names of the launch environment, in one place: the variables `conveyor launch` (and the
// Slurm and multi-host launches) set, clear or forward for each rank, and the ones a rank
// reads to learn its place in the job (transport/bootstrap/options.h says how it reads them),
// its rendezvous, its job's secret and its restart count.
//
// Why in common/: the writers (launcher/launch) and the readers (transport/bootstrap, train,
// bench) are rooms that cannot include one another (cmake/layers.txt), and a name typed in
// two places can drift apart without any compiler noticing. Like the exit codes
// (common/exit_code.h), these names are a contract with the outside: torchrun, Slurm and
// Open MPI define theirs, and users and scripts set conveyor's (docs/LAUNCH.md, "Environment
// variables").
// The tests spell the names out on purpose, so that a change here fails them.
#pragma once

namespace conveyor {

// ---- torchrun's names: what `conveyor launch` sets for every rank -------------------------
inline constexpr const char* kEnvRank = "RANK";               // 0-based rank in the job
inline constexpr const char* kEnvWorldSize = "WORLD_SIZE";    // ranks in the job
inline constexpr const char* kEnvLocalRank = "LOCAL_RANK";    // index among this host's ranks
inline constexpr const char* kEnvMasterAddr = "MASTER_ADDR";  // rank 0's host
inline constexpr const char* kEnvMasterPort = "MASTER_PORT";  // the rendezvous port
// Set by torchrun's agent, which then holds MASTER_PORT itself (so conveyor takes the next).
inline constexpr const char* kEnvTorchelasticRunId = "TORCHELASTIC_RUN_ID";

// ---- conveyor's own ------------------------------------------------------------------------
inline constexpr const char* kEnvJobToken = "CONVEYOR_JOB_TOKEN";  // the job's secret
// The descriptor of the supervisor's failure-report socket (transport/bootstrap/job_failure.h).
inline constexpr const char* kEnvFailureReportFd = "CONVEYOR_FAILURE_REPORT_FD";
// How many times `conveyor launch --max-restarts` restarted the job before this attempt.
inline constexpr const char* kEnvRestartCount = "CONVEYOR_RESTART_COUNT";
inline constexpr const char* kEnvRdzvPort = "CONVEYOR_RDZV_PORT";  // wins over MASTER_PORT
inline constexpr const char* kEnvConnectTimeout = "CONVEYOR_CONNECT_TIMEOUT";        // seconds
inline constexpr const char* kEnvHeartbeatTimeout = "CONVEYOR_HEARTBEAT_TIMEOUT";    // seconds
inline constexpr const char* kEnvUcxPeerErrorMode = "CONVEYOR_UCX_PEER_ERROR_MODE";  // 0 or 1
inline constexpr const char* kEnvProgressThread = "CONVEYOR_PROGRESS_THREAD";        // 0 or 1

// ---- Slurm's (srun sets them for every task) ----------------------------------------------
inline constexpr const char* kEnvSlurmJobId = "SLURM_JOB_ID";  // set inside an allocation
inline constexpr const char* kEnvSlurmProcId = "SLURM_PROCID";
inline constexpr const char* kEnvSlurmNtasks = "SLURM_NTASKS";
inline constexpr const char* kEnvSlurmLocalId = "SLURM_LOCALID";
inline constexpr const char* kEnvSlurmJobNodeList = "SLURM_JOB_NODELIST";
inline constexpr const char* kEnvSlurmNodeList = "SLURM_NODELIST";  // older Slurm's name

// ---- Open MPI's (mpirun sets them for every process) --------------------------------------
inline constexpr const char* kEnvOmpiRank = "OMPI_COMM_WORLD_RANK";
inline constexpr const char* kEnvOmpiSize = "OMPI_COMM_WORLD_SIZE";
inline constexpr const char* kEnvOmpiLocalRank = "OMPI_COMM_WORLD_LOCAL_RANK";

}  // namespace conveyor
