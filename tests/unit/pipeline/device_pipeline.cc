#include "tests/unit/pipeline/device_pipeline.h"

#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "common/error.h"
#include "kernels/cpu/cpu_backend.h"
#include "model/param_table.h"
#include "model/partition.h"
#include "model/stage_model.h"
#include "pipeline/parallel/gradient_buckets.h"
#include "pipeline/parallel/gradient_sync.h"
#include "pipeline/runtime/device_transport.h"
#include "pipeline/runtime/executor.h"
#include "pipeline/runtime/message_tag.h"
#include "pipeline/schedule/topology.h"

namespace conveyor::test {

using namespace conveyor::pipeline;

model::ModelConfig tiny_device_test_model() {
  model::ModelConfig c;
  c.layers = 6;
  c.heads = 2;
  c.dim = 16;
  c.seq = 8;
  c.vocab = 32;
  return c;
}

std::unique_ptr<transport::StagingTransport> staged(FakeFabric& fabric, int rank,
                                                    FakeDeviceBackend& device) {
  return std::make_unique<transport::StagingTransport>(
      std::make_unique<FakeTransport>(fabric, rank), staging_options(device));
}

std::vector<float> to_host(kernels::Backend& k, const float* p, size_t n) {
  std::vector<float> out(n);
  k.to_host(out.data(), p, n * sizeof(float));
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

namespace {

// A transport that says it writes device memory itself, as UCX with CUDA support does: staging
// whose copies are the fake's DMA (outside the stream, so they neither wait for it nor count as
// a wait). Each device message it is handed is a hazard when the backend may still run queued
// work on that memory: a GPU's DMA would race the kernels.
class DeviceDirectTransport final : public transport::Transport {
 public:
  DeviceDirectTransport(std::unique_ptr<transport::Transport> inner, FakeDeviceBackend& device,
                        std::vector<std::string>& hazards)
      : inner_(std::move(inner)), device_(device), hazards_(hazards) {}

  bool device_memory_direct() const override { return true; }
  int rank() const override { return inner_->rank(); }
  int world_size() const override { return inner_->world_size(); }
  transport::MemoryRegion register_memory(void* p, size_t bytes,
                                          transport::MemoryType type) override {
    return inner_->register_memory(p, bytes, type);
  }
  void set_tag_describer(transport::TagDescriber d) override { inner_->set_tag_describer(d); }
  transport::Request isend(int peer, transport::Tag tag, const void* p, size_t bytes,
                           const transport::MemoryRegion* mr, transport::MemoryType type) override {
    check("send", tag, p, bytes, type);
    return inner_->isend(peer, tag, p, bytes, mr, type);
  }
  transport::Request irecv(int peer, transport::Tag tag, void* p, size_t bytes,
                           const transport::MemoryRegion* mr, transport::MemoryType type) override {
    check("receive", tag, p, bytes, type);
    return inner_->irecv(peer, tag, p, bytes, mr, type);
  }
  bool test(transport::Request& r) override { return inner_->test(r); }
  void wait(transport::Request& r, Deadline d) override { inner_->wait(r, d); }
  void wait_all(std::span<transport::Request> rs, Deadline d) override { inner_->wait_all(rs, d); }
  void cancel(transport::Request& r) override { inner_->cancel(r); }
  std::vector<double> all_reduce_sum(std::span<const double> v, Deadline d) override {
    return inner_->all_reduce_sum(v, d);
  }
  void barrier(Deadline d) override { inner_->barrier(d); }
  void broadcast(std::vector<uint8_t>& bytes, int root, Deadline d) override {
    inner_->broadcast(bytes, root, d);
  }
  void abort(const std::string& reason) override { inner_->abort(reason); }
  void shutdown(Deadline d) override { inner_->shutdown(d); }

 private:
  void check(const char* what, transport::Tag tag, const void* p, size_t bytes,
             transport::MemoryType type) {
    if (type != transport::MemoryType::kDevice || bytes == 0) return;
    if (device_.queued_work_touches(p, bytes)) {
      std::lock_guard lock(mu_);
      hazards_.push_back(fmt::format("{} {} ({} bytes) while queued work may use them", what,
                                     describe_message(tag), bytes));
    }
  }

  std::unique_ptr<transport::Transport> inner_;
  FakeDeviceBackend& device_;
  std::mutex mu_;
  std::vector<std::string>& hazards_;
};

std::string error_text(const std::exception_ptr& e) {
  if (!e) return "";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& err) {
    return err.what();
  }
}

void load_batch(int mb, int32_t* tokens, int32_t* targets, const model::ModelConfig& c) {
  for (int i = 0; i < kDeviceTestMicroBatch * c.seq; ++i) {
    tokens[i] = (mb * 7 + i * 3) % c.vocab;
    targets[i] = (mb * 5 + i * 11 + 1) % c.vocab;
  }
}

}  // namespace

std::vector<RankResult> run_pipeline(const PipelineRun& run) {
  const Schedule& schedule = run.schedule;
  const int replicas = run.replicas;
  const Topology topo = Topology::make(replicas, schedule.stages, schedule.virtual_stages);
  const int p = topo.world_size();
  FakeFabric fabric(p);
  std::vector<RankResult> out(p);
  std::vector<std::thread> threads;
  for (int r = 0; r < p; ++r) {
    threads.emplace_back([&, r] {
      RankResult& me = out[r];
      try {
        std::unique_ptr<kernels::Backend> backend;
        FakeDeviceBackend* fake = nullptr;
        if (run.device) {
          auto made = std::make_unique<FakeDeviceBackend>();
          fake = made.get();
          backend = std::move(made);
        } else {
          backend = std::make_unique<kernels::CpuBackend>(1);
        }
        std::unique_ptr<transport::Transport> t;
        if (fake) {
          if (run.device_direct) {
            transport::StagingOptions dma;
            dma.to_host = [fake](void* h, const void* d, size_t n) { fake->dma_read(h, d, n); };
            dma.from_host = [fake](void* d, const void* h, size_t n) { fake->dma_write(d, h, n); };
            t = std::make_unique<DeviceDirectTransport>(
                std::make_unique<transport::StagingTransport>(
                    std::make_unique<FakeTransport>(fabric, r), dma),
                *fake, me.hazards);
          } else {
            t = staged(fabric, r, *fake);
          }
        } else {
          t = std::make_unique<FakeTransport>(fabric, r);
        }
        t->set_tag_describer(describe_message);
        const auto& cfg = run.config;
        const auto all =
            model::chunk_specs(model::default_partition(cfg.layers, topo.num_virtual_stages()));
        std::vector<model::ChunkSpec> mine;
        const int stage = topo.place(r).stage;
        for (int c = 0; c < topo.virtual_stages; ++c)
          mine.push_back(all[topo.virtual_stage(stage, c)]);
        const auto params = model::stage_parameters(cfg, mine);
        std::vector<int> chunk_of;
        for (const auto& prm : params) chunk_of.push_back(model::chunk_of_parameter(prm, mine));
        BucketPlan plan = plan_buckets(params, chunk_of, gradient_completion_order(schedule, stage),
                                       200, replicas);
        const int replica = topo.place(r).replica;
        std::vector<bool> moments_kept;
        if (run.zero1) moments_kept = GradientSync::owned_parameters(plan, replica);
        model::StageModel m(*backend, cfg, mine, kDeviceTestMicroBatch, moments_kept);
        m.store().initialize(42);
        {
          GradientSyncOptions sync_options;
          sync_options.zero1 = run.zero1;
          sync_options.wait_timeout_s = 30;
          GradientSync sync(m, std::move(plan), topo.replica_group(stage), replica,
                            p > 1 ? t.get() : nullptr, sync_options);
          ExecutorOptions options;
          options.after_chunk_gradients = [&sync](int chunk, int first) {
            sync.gradients_done(chunk, first);
          };
          Executor executor(m, schedule, topo, r, topo.stages > 1 ? t.get() : nullptr, options);
          const BatchLoader loader = [&cfg](int mb, int32_t* tokens, int32_t* targets) {
            load_batch(mb, tokens, targets, cfg);
          };
          for (int step = 0; step < run.steps; ++step) {
            const size_t waits_before = fake ? fake->host_waits() : 0;
            m.zero_grads();
            sync.begin_step(step);
            me.losses.push_back(executor.run_step(step, loader, 0.01f).losses);
            sync.finish_gradients();
            if (run.norm)
              me.grad_sum_squares = m.grad_sum_squares([&sync](int i) { return sync.owns(i); });
            sync.gather_parameters();  // ZeRO-1: every replica's (unchanged) parameters
            if (fake) me.host_waits.push_back(fake->host_waits() - waits_before);
          }
        }
        auto prm = m.store().params();
        me.params = to_host(*backend, prm.data(), prm.size());
        auto g = m.store().grads();
        me.grads = to_host(*backend, g.data(), g.size());
        if (m.holds_head())
          me.head_wte_grad = to_host(*backend, m.head_wte_grad().data(), m.head_wte_grad().size());
        if (fake) {
          me.unbound_calls = fake->unbound_calls();
          me.first_unbound = fake->first_unbound_call();
          const auto* staging = dynamic_cast<transport::StagingTransport*>(t.get());
          if (staging) {
            const auto st = staging->stats();
            // Every remote activation and gradient went through host memory.
            if (p > 1 && (st.staged_sends == 0 || st.staged_receives == 0))
              me.error = "nothing was staged";
          }
          // The loader's tokens and targets reached the slots through from_host.
          if ((m.holds_embedding() || m.holds_head()) && fake->copies_from_host() == 0)
            me.error = "the batch never went through from_host";
        }
        t.reset();
        if (!fabric.violations().empty()) me.error = fabric.violations().front();
      } catch (...) {
        me.error = error_text(std::current_exception());
      }
    });
  }
  for (auto& th : threads) th.join();
  return out;
}

}  // namespace conveyor::test
