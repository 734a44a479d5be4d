// A pipeline of in-process ranks for the device-memory tests: every rank a thread with its own
// backend, FakeDeviceBackend behind staging (tests/fakes/) or the CPU backend on plain
// FakeTransport, running a few training steps of a tiny model. Shared by
// device_staging_test.cc (the device path's bits) and device_readiness_test.cc (what a GPU
// would make observable: host waits per step, device-direct receives, thread binding).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "model/config.h"
#include "pipeline/schedule/schedule.h"
#include "tests/fakes/fake_device_backend.h"
#include "tests/fakes/fake_transport.h"
#include "transport/staging_transport.h"

namespace conveyor::test {

// 6 layers, 2 heads, d 16, T 8, V 32; micro-batches of kDeviceTestMicroBatch sequences.
model::ModelConfig tiny_device_test_model();
inline constexpr int kDeviceTestMicroBatch = 2;

// A rank's transport for device tensors: FakeTransport (host memory only) behind staging
// through `device`.
std::unique_ptr<transport::StagingTransport> staged(FakeFabric& fabric, int rank,
                                                    FakeDeviceBackend& device);

struct PipelineRun {
  pipeline::Schedule schedule;
  bool device = false;  // FakeDeviceBackend, else the CPU backend
  int replicas = 1;     // > 1: GradientSync sums each stage's gradients (buckets of 200)
  bool zero1 = false;   // with ZeRO-1's parameter all-gather
  // The transport claims to write device memory itself (a CUDA-aware UCX): every device
  // message it is handed is checked against the backend's queued work (hazards below).
  bool device_direct = false;
  model::ModelConfig config = tiny_device_test_model();
  int steps = 2;
  // Each step ends with the gradient norm's sums of squares, as in training (a wait for the
  // device); without, steps follow each other with nothing in between.
  bool norm = true;
};

// What one rank computed, read back to the host, and (device runs) the fake's books.
struct RankResult {
  std::vector<std::vector<float>> losses;  // per step
  std::vector<float> grads, head_wte_grad, params;
  std::vector<double> grad_sum_squares;  // of the last step, with run.norm
  std::vector<size_t> host_waits;        // per step: FakeDeviceBackend::host_waits()
  size_t unbound_calls = 0;              // FakeDeviceBackend::unbound_calls()
  std::string first_unbound;
  // Device messages handed to a device-direct transport while the stream might still use
  // their memory, each described.
  std::vector<std::string> hazards;
  std::string error;  // empty when the rank ran
};

// `run.steps` steps of `run.schedule` on every rank (zero_grads, the step, the gradient
// all-reduce, grad_sum_squares as the trainer computes the norm).
std::vector<RankResult> run_pipeline(const PipelineRun& run);

std::vector<float> to_host(kernels::Backend& k, const float* p, size_t n);
bool same_bits(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace conveyor::test
