// The device seam (kernels/device.h): which GPU a rank runs on, from the local rank the launch
// environment gives (transport::options_from_env) to choose_gpu, under torchrun, srun and
// mpirun; --gpu; more ranks than GPUs; the NUMA node of a GPU from sysfs; what is said when
// there is no GPU. Runs without a GPU: the choice is a pure function of the counts.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/device.h"
#include "tests/test_util.h"
#include "transport/transport.h"

using namespace conveyor;
using conveyor::test::ScopedEnv;
using kernels::choose_gpu;

namespace {

// The GPUs the ranks of one host take when each is started with `env(local)` and the host has
// `gpus` GPUs: the trainer's composition, options_from_env's local rank into choose_gpu.
template <class EnvOf>
std::vector<int> gpus_of_host(int ranks, int gpus, EnvOf env) {
  std::vector<int> chosen;
  for (int local = 0; local < ranks; ++local) {
    const auto vars = env(local);
    ScopedEnv scoped({{vars[0].first, vars[0].second.c_str()},
                      {vars[1].first, vars[1].second.c_str()},
                      {vars[2].first, vars[2].second.c_str()},
                      {"CONVEYOR_JOB_TOKEN", "t"}});
    chosen.push_back(choose_gpu(-1, transport::options_from_env("").local_rank, gpus));
  }
  return chosen;
}

using Vars = std::vector<std::pair<const char*, std::string>>;

}  // namespace

TEST_CASE("ranks started by srun or mpirun land on different GPUs of their node", "[device]") {
  // The second node of an 8-task job, 4 tasks per node: no LOCAL_RANK (slurm_launch strips it,
  // srun never sets it), only Slurm's own local id.
  const auto srun = gpus_of_host(4, 4, [](int local) {
    return Vars{{"SLURM_PROCID", std::to_string(4 + local)},
                {"SLURM_NTASKS", "8"},
                {"SLURM_LOCALID", std::to_string(local)}};
  });
  CHECK(srun == std::vector<int>{0, 1, 2, 3});
  const auto mpirun = gpus_of_host(4, 4, [](int local) {
    return Vars{{"OMPI_COMM_WORLD_RANK", std::to_string(4 + local)},
                {"OMPI_COMM_WORLD_SIZE", "8"},
                {"OMPI_COMM_WORLD_LOCAL_RANK", std::to_string(local)}};
  });
  CHECK(mpirun == std::vector<int>{0, 1, 2, 3});
  // torchrun's (and conveyor launch's) LOCAL_RANK, even inside a Slurm step whose id differs.
  const auto torchrun = gpus_of_host(4, 8, [](int local) {
    return Vars{{"RANK", std::to_string(local)},
                {"WORLD_SIZE", "4"},
                {"LOCAL_RANK", std::to_string(local)}};
  });
  CHECK(torchrun == std::vector<int>{0, 1, 2, 3});
  ScopedEnv inside_slurm({{"RANK", "1"},
                          {"WORLD_SIZE", "2"},
                          {"LOCAL_RANK", "1"},
                          {"SLURM_LOCALID", "0"},
                          {"CONVEYOR_JOB_TOKEN", "t"}});
  CHECK(choose_gpu(-1, transport::options_from_env("").local_rank, 4) == 1);
}

TEST_CASE("a GPU given with --gpu takes every rank, and a GPU that is not there exits 2",
          "[device]") {
  for (int local = 0; local < 6; ++local) CHECK(choose_gpu(2, local, 4) == 2);
  CHECK(choose_gpu(0, 5, 1) == 0);
  try {
    choose_gpu(4, 0, 4);
    FAIL("--gpu 4 accepted on a host with 4 GPUs");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kUsage);
    CHECK(e.message() == "--gpu 4: this machine has 4 GPU(s), numbered 0 to 3");
  }
}

TEST_CASE("more ranks than GPUs share them round-robin", "[device]") {
  std::vector<int> chosen;
  for (int local = 0; local < 8; ++local) chosen.push_back(choose_gpu(-1, local, 3));
  CHECK(chosen == std::vector<int>{0, 1, 2, 0, 1, 2, 0, 1});
  for (int local = 0; local < 4; ++local) CHECK(choose_gpu(-1, local, 1) == 0);
}

TEST_CASE("a GPU's NUMA node comes from its PCI device in sysfs", "[device]") {
  test::TempDir sys;
  auto device = [&](const std::string& id, const std::string& numa) {
    std::filesystem::create_directories(sys / id);
    test::write_file(sys / id / "numa_node", numa);
  };
  device("0000:3b:00.0", "1\n");
  device("0000:5e:00.0", "-1\n");  // firmware that does not say
  device("0001:07:00.0", "3\n");
  // CUDA's upper-case bus id, and NVML's 8-digit domain, name the same sysfs entry.
  CHECK(kernels::pci_numa_node("0000:3B:00.0", sys.str()) == 1);
  CHECK(kernels::pci_numa_node("00000000:3B:00.0", sys.str()) == 1);
  CHECK(kernels::pci_numa_node("0001:07:00.0", sys.str()) == 3);
  CHECK(kernels::pci_numa_node("0000:5E:00.0", sys.str()) == -1);
  CHECK(kernels::pci_numa_node("0000:AF:00.0", sys.str()) == -1);  // not there
  CHECK(kernels::pci_numa_node("", sys.str()) == -1);
  CHECK(kernels::pci_numa_node("10000000:3B:00.0", sys.str()) == -1);  // no such domain
  test::write_file(sys / "numa_node", "2\n");
  CHECK(kernels::pci_numa_node("../0000:3B:00.0", sys.str()) == -1);  // never outside sysfs
}

TEST_CASE("with --device cuda and no GPU to choose, the error says why", "[device]") {
  const kernels::GpuList list = kernels::list_gpus();
  if (!list.gpus.empty()) {
    // A GPU host: the chosen GPU is one of the list, and its NUMA node is sysfs's.
    const kernels::Gpu gpu = kernels::choose_rank_gpu(-1, 5);
    CHECK(gpu.index == 5 % static_cast<int>(list.gpus.size()));
    CHECK(gpu.numa_node == kernels::pci_numa_node(gpu.pci_bus_id));
    return;
  }
  CHECK_FALSE(list.why_none.empty());
  try {
    kernels::choose_rank_gpu(-1, 0);
    FAIL("a GPU was chosen on a host without one");
  } catch (const Error& e) {
    INFO(e.message());
    CHECK(e.kind() == ErrorKind::kUsage);
    if (kernels::cuda_compiled()) {
      CHECK(e.message().find("--device cuda: no GPU was found (cudaGetDeviceCount") == 0);
    } else {
      CHECK(e.message().find("this build has no CUDA backend") != std::string::npos);
    }
  }
}

TEST_CASE("device names parse to kinds, and an unknown one exits 2", "[device]") {
  CHECK(kernels::parse_device_kind("cpu") == kernels::DeviceKind::kCpu);
  CHECK(kernels::parse_device_kind("cuda") == kernels::DeviceKind::kCuda);
  CHECK(std::string(kernels::device_kind_name(kernels::DeviceKind::kCuda)) == "cuda");
  try {
    kernels::parse_device_kind("CUDA");
    FAIL("an unknown device name was accepted");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::kUsage);
    CHECK(e.message() == "--device 'CUDA' is not known; use cpu or cuda");
  }
}

TEST_CASE("host memory is not device memory, and pinned memory is there only with a GPU",
          "[device]") {
  std::vector<float> host(16);
  CHECK_FALSE(kernels::is_device_pointer(host.data()));
  CHECK_FALSE(kernels::is_device_pointer(nullptr));
  if (!kernels::pinned_memory_available()) {
    CHECK_THROWS_AS(kernels::alloc_pinned(64), Error);
    return;
  }
  void* pinned = kernels::alloc_pinned(64);
  CHECK_FALSE(kernels::is_device_pointer(pinned));  // pinned, but host memory
  kernels::free_pinned(pinned);
}
