// The device seam: the one place that knows about GPUs. Which compute device a run asks for
// (--device), which memory a buffer lives in, the GPUs of this host (name, memory, NUMA
// node), which GPU a rank runs on, how much memory that GPU has, pinned host memory, and
// whether a pointer is device memory. Everything above kernels/ (the trainer, the pipeline's
// device transport, `conveyor doctor`, the transport) asks here instead of calling CUDA.
//
// The CUDA half lives in kernels/cuda/cuda_device.cc and is compiled only with
// CONVEYOR_WITH_CUDA; without it the GPU list is empty and says why ("this build has no CUDA
// backend ..."), pinned allocation throws, and no pointer is device memory.
//
// How a rank's GPU is chosen (choose_gpu): --gpu N when given, else the rank's local rank
// modulo the host's GPU count. The local rank is the one the launch resolved
// (transport::Options::local_rank: LOCAL_RANK, else SLURM_LOCALID, else
// OMPI_COMM_WORLD_LOCAL_RANK); the caller passes it in, nothing here reads the environment.
// So the ranks of a host spread over its GPUs under conveyor launch, torchrun, srun and
// mpirun alike, and share them round-robin when there are more ranks than GPUs.
//
// Thread safety: every function may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace conveyor::kernels {

// Where a buffer's bytes live. The transport is told it (transport.h) and never guesses it.
enum class MemoryType : uint8_t { kHost, kDevice };
const char* memory_type_name(MemoryType type);  // "host", "device"

// The compute devices conveyor knows (--device). A build may lack one: make_backend says so.
enum class DeviceKind : uint8_t { kCpu, kCuda };
// "cpu" -> kCpu, "cuda" -> kCuda; anything else is Error(kUsage) naming the known devices.
DeviceKind parse_device_kind(std::string_view name);
const char* device_kind_name(DeviceKind kind);  // "cpu", "cuda"
bool cuda_compiled();                           // built with CONVEYOR_WITH_CUDA

// ---- GPUs ------------------------------------------------------------------------------

struct Gpu {
  int index = 0;            // the CUDA device ordinal
  std::string name;         // "NVIDIA H100 80GB HBM3"
  std::string pci_bus_id;   // "0000:3B:00.0", as cudaDeviceGetPCIBusId gives it
  size_t memory_bytes = 0;  // total device memory
  int numa_node = -1;       // the NUMA node of its PCI slot; -1 when the host does not say
};

struct GpuList {
  std::vector<Gpu> gpus;
  // Why `gpus` is empty: "cudaGetDeviceCount: <CUDA's reason>", "cudaGetDeviceCount reports 0
  // devices", or that this build has no CUDA backend.
  std::string why_none;
};
// This host's GPUs, in CUDA's order (which honours CUDA_VISIBLE_DEVICES).
GpuList list_gpus();

// The GPU of a rank (pure): `requested` (--gpu) when >= 0, else local_rank % device_count.
// REQUIRES device_count > 0 and local_rank >= 0. Throws Error(kUsage) "--gpu N: this machine
// has C GPU(s), numbered 0 to C-1" when requested >= device_count.
int choose_gpu(int requested, int local_rank, int device_count);

// list_gpus() + choose_gpu(): the GPU this rank runs on with --device cuda. Throws
// Error(kUsage) when the build has no CUDA backend, when no GPU is found ("--device cuda: no
// GPU was found (cudaGetDeviceCount: ...)"), or when `requested` does not exist.
Gpu choose_rank_gpu(int requested, int local_rank);

// Free and total memory of GPU `gpu` now (cudaMemGetInfo; creates the CUDA context on that
// GPU if there is none yet). Throws Error(kRuntime) when CUDA fails or is not built in.
struct GpuMemory {
  size_t free_bytes = 0;
  size_t total_bytes = 0;
};
GpuMemory gpu_memory(int gpu);

// The NUMA node of the PCI device `pci_bus_id` ("0000:3B:00.0"; any case, a domain of 4 or 8
// hex digits) from <sysfs_devices>/<domain:bus:device.function>/numa_node; -1 when the file
// is missing, unreadable, or says -1 (a host with one node, or a firmware that does not tell).
int pci_numa_node(std::string_view pci_bus_id,
                  const std::string& sysfs_devices = "/sys/bus/pci/devices");

// ---- Host memory the GPU copies at DMA speed, and telling memory apart ------------------

// Whether alloc_pinned can work here: CUDA built in and at least one GPU usable (cached).
bool pinned_memory_available();
// Page-locked host memory (cudaMallocHost); at least one byte. Throws Error(kRuntime) when
// CUDA fails or is not built in. free_pinned(nullptr) does nothing.
void* alloc_pinned(size_t bytes);
void free_pinned(void* p) noexcept;

// Whether `p` points into CUDA device (or managed) memory. False without CUDA, without a GPU
// and for host memory, pinned or not. It asks the driver (cudaPointerGetAttributes): a check
// for set-up time, not for every message (the transport is told the memory type instead).
bool is_device_pointer(const void* p);

}  // namespace conveyor::kernels
