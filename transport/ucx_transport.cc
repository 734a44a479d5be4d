#include "transport/ucx_transport.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "common/log.h"
#include "common/net.h"
#include "kernels/device.h"
#include "transport/bootstrap/socket.h"
#include "transport/rdma.h"
#include "transport/tag.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define CONVEYOR_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/lsan_interface.h>
#define CONVEYOR_LSAN 1
#endif
#endif

namespace conveyor::transport {

namespace {

// Linux's loopback interface, as UCX names network devices.
constexpr const char* kLoopbackDevice = "lo";

void ucx_check(ucs_status_t status, const char* what) {
  if (status != UCS_OK)
    throw Error(ErrorKind::kRuntime,
                fmt::format("UCX {} failed: {}", what, ucs_status_string(status)),
                "UCX_LOG_LEVEL=info shows what UCX tried; `conveyor doctor` lists its transports");
}

void on_send_done(void* request, ucs_status_t status, void* user_data) {
  auto* s = static_cast<Request::State*>(user_data);
  s->status = status;
  s->ucx = nullptr;
  ucp_request_free(request);
  mark_done(*s);
}

void on_recv_done(void* request, ucs_status_t status, const ucp_tag_recv_info_t* info,
                  void* user_data) {
  auto* s = static_cast<Request::State*>(user_data);
  s->status = status;
  if (status == UCS_OK && info != nullptr) s->received = info->length;
  s->ucx = nullptr;
  ucp_request_free(request);
  mark_done(*s);
}

// Endpoint errors only record the status; the failure surfaces on the next call that
// involves that peer (and, for a dead process, through the bootstrap anyway).
void on_ep_error(void* arg, ucp_ep_h, ucs_status_t status) {
  *static_cast<int*>(arg) = status;
}

// What a transport leaves behind when it cannot tear UCX down (see teardown()): kept
// reachable from here until the process exits, so UCX never sees freed request state and
// leak checkers see it as reachable (but see UcxSetupAllocations). Never destroyed.
struct Parked {
  ucp_context_h context;
  ucp_worker_h worker;
  std::vector<std::shared_ptr<Request::State>> requests;
};
std::mutex g_parked_mu;
std::vector<Parked>* g_parked = nullptr;

void park_until_exit(Parked p) {
  std::lock_guard lock(g_parked_mu);
  if (!g_parked) g_parked = new std::vector<Parked>;
  g_parked->push_back(std::move(p));
}

// While one is alive, LeakSanitizer does not track what this thread allocates. UCX keeps
// its endpoints, and the records of its interfaces' shared-memory segments, in memory it
// maps itself, which LeakSanitizer does not scan; a parked worker's are then reported as
// leaks although the worker is reachable. So the worker's and the endpoints' creation (and
// the warm-up that connects them) run under one. Without a sanitizer it does nothing.
class UcxSetupAllocations {
 public:
#ifdef CONVEYOR_LSAN
  UcxSetupAllocations() {
    __lsan_disable();
  }
  ~UcxSetupAllocations() {
    __lsan_enable();
  }
#else
  UcxSetupAllocations() {}
  ~UcxSetupAllocations() {}
#endif
  UcxSetupAllocations(const UcxSetupAllocations&) = delete;
  UcxSetupAllocations& operator=(const UcxSetupAllocations&) = delete;
};

std::string describe_tag(TagDescriber describer, Tag tag) {
  if ((tag & kInternalBits) != 0) return "endpoint warm-up";
  return describer ? describer(tag) : fmt::format("tag {:#x}", tag);
}

ucs_memory_type_t ucx_memory_type(MemoryType type) {
  return type == MemoryType::kDevice ? UCS_MEMORY_TYPE_CUDA : UCS_MEMORY_TYPE_HOST;
}

}  // namespace

std::string UcxTransport::describe_op(const Request::State& s) const {
  return fmt::format("{} of {} bytes {} rank {} ({})", s.is_send ? "send" : "receive", s.bytes,
                     s.is_send ? "to" : "from", s.peer, describe_tag(describer_, s.tag));
}

// A ucp_mem_map registration.
class UcxTransport::Region final : public MemoryRegion::Impl {
 public:
  explicit Region(UcxTransport* owner) : owner_(owner) { backend = owner; }
  ~Region() override {
    if (owner_) owner_->deregister(this);
  }
  UcxTransport* owner_;
  ucp_mem_h memh = nullptr;  // maps [base, base + bytes)
};

// ---- construction and teardown ---------------------------------------------------------

// How long cancel() waits for a send to let go of its buffer.
constexpr double kCancelSendSeconds = 5;
// How long shutdown() lets the endpoints' closing flush take before it goes on without it.
constexpr double kEndpointCloseSeconds = 5;

UcxTransport::UcxTransport(const Options& options) : options_(options) {
  CONVEYOR_REQUIRE(options.world_size >= 1 && options.world_size <= kMaxRanks,
                   "world size {} is outside 1..{}", options.world_size, kMaxRanks);
  CONVEYOR_REQUIRE(options.rank >= 0 && options.rank < options.world_size,
                   "rank {} is outside 0..{}", options.rank, options.world_size - 1);
  const auto deadline = Deadline::after_seconds(options.connect_timeout_s);
  try {
    if (options.world_size > 1 && options.rank == 0) {
      // First, so a port in use fails before anything else starts.
      ServiceConfig service{options.world_size, options.job_token, options.fingerprint,
                            options.heartbeat_timeout_s};
      service.listen_host = options.master_addr;
      server_ = std::make_unique<RendezvousServer>(options.master_port, std::move(service));
    }
    ucp_config_t* config = nullptr;
    ucx_check(ucp_config_read(nullptr, nullptr, &config),
              "reading its configuration (UCX_* variables)");
    // Without UCX_NET_DEVICES, UCX opens every network device. When every rank is on this
    // host (MASTER_ADDR is loopback, so no other host can join), the loopback interface is
    // all they need: UCX's TCP transport then listens on nothing another host can reach.
    // Shared memory, cma and cuda_ipc are not network devices and stay as they are.
    if (options.world_size > 1 && std::getenv("UCX_NET_DEVICES") == nullptr &&
        is_loopback_host(options.master_addr)) {
      ucx_check(ucp_config_modify(config, "NET_DEVICES", kLoopbackDevice), "setting NET_DEVICES");
      CONVEYOR_LOG_DEBUG(
          "transport: every rank is on this host (MASTER_ADDR {}): UCX uses "
          "network device {} only (set UCX_NET_DEVICES to choose)",
          options.master_addr, kLoopbackDevice);
    } else if (options.world_size > 1 && std::getenv("UCX_NET_DEVICES") == nullptr) {
      // With RDMA, UCX would use every port for every rank: give each local rank its own NIC
      // instead (the one near its GPU; dealt out among equals).
      const std::string nic =
          rdma::pick_net_device(rdma::discover(), options.gpu_numa_node, options.local_rank);
      if (!nic.empty()) {
        ucx_check(ucp_config_modify(config, "NET_DEVICES", nic.c_str()), "setting NET_DEVICES");
        CONVEYOR_LOG_INFO(
            "transport: local rank {} uses RDMA port {} (UCX_NET_DEVICES={} by "
            "default; set UCX_NET_DEVICES to choose)",
            options.local_rank, nic, nic);
      }
    }
    // Between hosts over TCP (this host has no RDMA port), every message goes eagerly: the
    // sender pushes it in posting order. UCX's rendezvous would wait for a handshake whose
    // control messages queue behind the other direction's bulk data, and would let the next
    // message share the link with the one the peer needs first; on a 50 Mbit/s link that
    // cost 10% of the step (docs/BENCHMARKS.md, "A slow link between two stages"). Over
    // RDMA the rendezvous is the zero-copy read that should stay.
    if (options.world_size > 1 && !is_loopback_host(options.master_addr) &&
        std::getenv("UCX_RNDV_THRESH") == nullptr &&
        rdma::pick_net_device(rdma::discover(), -1).empty()) {
      ucx_check(ucp_config_modify(config, "RNDV_THRESH", "inf"), "setting RNDV_THRESH");
      CONVEYOR_LOG_DEBUG(
          "transport: no RDMA port on this host: messages between hosts go over TCP, eagerly "
          "(UCX_RNDV_THRESH=inf by default; set UCX_RNDV_THRESH to choose)");
    }
    ucp_params_t params{};
    params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_NAME;
    // WAKEUP: the progress thread sleeps on the worker's event descriptor.
    params.features = UCP_FEATURE_TAG |
                      (options.progress_thread && options.world_size > 1 ? UCP_FEATURE_WAKEUP : 0);
    params.name = "conveyor";
    ucs_status_t st = ucp_init(&params, config, &context_);
    ucp_config_release(config);
    ucx_check(st, "initialisation (ucp_init)");

    ucp_context_attr_t attr{};
    attr.field_mask = UCP_ATTR_FIELD_MEMORY_TYPES;
    ucx_check(ucp_context_query(context_, &attr), "context query");
    ucx_cuda_ = (attr.memory_types & UCS_BIT(UCS_MEMORY_TYPE_CUDA)) != 0;

    ucp_worker_params_t wp{};
    wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
    wp.thread_mode = UCS_THREAD_MODE_SERIALIZED;  // we hold p2p_mu_ around every call
    {
      UcxSetupAllocations unchecked;
      ucx_check(ucp_worker_create(context_, &wp, &worker_), "worker creation");
    }

    ucp_address_t* addr = nullptr;
    size_t addr_len = 0;
    ucx_check(ucp_worker_get_address(worker_, &addr, &addr_len), "worker address query");
    std::vector<uint8_t> address(reinterpret_cast<uint8_t*>(addr),
                                 reinterpret_cast<uint8_t*>(addr) + addr_len);
    ucp_worker_release_address(worker_, addr);

    eps_.assign(options.world_size, nullptr);
    ep_status_.assign(options.world_size, UCS_OK);
    if (options.world_size == 1) return;

    boot_ = std::make_unique<BootstrapClient>(options, std::move(address), deadline);
    std::lock_guard lock(p2p_mu_);
    for (int r = 0; r < options.world_size; ++r) {
      if (r == options.rank) continue;
      const auto& remote = boot_->addresses()[r];
      ucp_ep_params_t ep{};
      ep.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                      UCP_EP_PARAM_FIELD_ERR_HANDLER;
      ep.address = reinterpret_cast<const ucp_address_t*>(remote.data());
      ep.err_mode =
          options.ucx_peer_error_mode ? UCP_ERR_HANDLING_MODE_PEER : UCP_ERR_HANDLING_MODE_NONE;
      ep.err_handler.cb = on_ep_error;
      ep.err_handler.arg = &ep_status_[r];
      {
        UcxSetupAllocations unchecked;
        st = ucp_ep_create(worker_, &ep, &eps_[r]);
      }
      if (st != UCS_OK)
        throw Error(
            ErrorKind::kRuntime,
            fmt::format("UCX cannot create an endpoint to rank {}: {}", r, ucs_status_string(st)),
            "check UCX_TLS / UCX_NET_DEVICES on both ranks (`conveyor doctor`)");
    }
  } catch (const Error& e) {
    // Rank 0 hosts the service: the ranks that joined hear why it gave up before it goes
    // (a no-op when the service already failed the job).
    if (server_) server_->fail_job(-1, e.kind(), FailureCause::kOther, e.message());
    teardown();
    throw;
  } catch (...) {
    teardown();
    throw;
  }
  // Wire every endpoint up now (UCX connects lazily): one byte each way with every peer.
  try {
    std::vector<uint8_t> in(options.world_size), out(options.world_size, 1);
    std::vector<Request> reqs;
    {
      std::lock_guard lock(p2p_mu_);
      for (int r = 0; r < options.world_size; ++r) {
        if (r == options.rank) continue;
        const Tag t = kInternalBits;
        reqs.push_back(post(false, r, pack_tag(r, t), t, &in[r], 1, nullptr, MemoryType::kHost));
        reqs.push_back(
            post(true, r, pack_tag(options.rank, t), t, &out[r], 1, nullptr, MemoryType::kHost));
      }
    }
    {
      UcxSetupAllocations unchecked;
      wait_all(reqs, deadline);
    }
    barrier(deadline);
  } catch (...) {
    abort("could not connect to every peer over UCX");
    teardown();
    throw;
  }
  if (options.progress_thread) progress_ = std::make_unique<ProgressThread>(worker_, p2p_mu_);
  CONVEYOR_LOG_DEBUG(
      "transport: rank {} of {} connected (UCX CUDA support: {}, progress thread: {})",
      options.rank, options.world_size, ucx_cuda_, progress_ != nullptr);
}

UcxTransport::~UcxTransport() {
  // After the job failed there is nobody to tell: the others already know.
  if (!shut_down_ && !aborted_ && options_.world_size > 1 && !(boot_ && boot_->failed()))
    abort("it stopped without shutting its transport down (an error on that rank?)");
  teardown();
}

void UcxTransport::stop_progress_thread() noexcept {
  if (progress_) progress_->stop();
}

void UcxTransport::teardown() noexcept {
  stop_progress_thread();
  {
    std::lock_guard lock(p2p_mu_);
    const bool endpoints_open =
        std::any_of(eps_.begin(), eps_.end(), [](ucp_ep_h ep) { return ep != nullptr; });
    const bool park = worker_ && !shut_down_ && endpoints_open && !options_.ucx_peer_error_mode;
    if (park) {
      // An end without shutdown(): a peer failed, or this rank did. Without UCX's peer
      // error mode nothing can release what UCX holds for a peer that is gone: a send
      // cannot be cancelled, an endpoint closes only by a flush that never completes, and
      // FORCE is refused. Destroying the worker anyway prints "object ... was not returned
      // to mpool ucp_requests" and can trip UCX's assertions. So UCX is left to the process
      // exit (which follows: exit code 1 or 3), as it is.
      cancel_receives();
      Parked p{context_, worker_, {}};
      in_flight_.for_each([&](Request::State& s) {
        if (s.ucx) p.requests.push_back(s.keep_alive);  // UCX may still point at it
      });
      park_until_exit(std::move(p));
      for (auto& [base, region] : regions_) region->owner_ = nullptr;  // stays mapped
      regions_.clear();
      worker_ = nullptr;
      context_ = nullptr;
      CONVEYOR_LOG_DEBUG("transport: rank {} ended without shutdown; UCX is left to the exit",
                         options_.rank);
    }
    if (worker_) {
      cancel_receives();
      // FORCE is only allowed with peer error handling; otherwise a flush, bounded.
      close_endpoints(options_.ucx_peer_error_mode ? UCP_EP_CLOSE_FLAG_FORCE : 0,
                      Deadline::after_seconds(0.5));
      for (auto& [base, region] : regions_) {
        CONVEYOR_LOG_ERROR("transport: a registered region at {} outlived its transport", base);
        ucp_mem_unmap(context_, region->memh);
        region->owner_ = nullptr;
      }
      regions_.clear();
      ucp_worker_destroy(worker_);
      worker_ = nullptr;
    }
    in_flight_.clear();  // a parked request stays alive in its Parked entry
    if (context_) ucp_cleanup(context_);
    context_ = nullptr;
  }
  boot_.reset();
  server_.reset();
}

bool UcxTransport::close_endpoints(uint32_t flags, Deadline deadline) {
  std::vector<void*> closing;
  for (auto& ep : eps_) {
    if (!ep) continue;
    ucp_request_param_t prm{};
    prm.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    prm.flags = flags;
    void* r = ucp_ep_close_nbx(ep, &prm);
    if (UCS_PTR_IS_PTR(r)) closing.push_back(r);
    ep = nullptr;
  }
  for (unsigned idle = 0; !closing.empty() && !deadline.expired();) {
    idle = ucp_worker_progress(worker_) != 0 ? 0 : idle + 1;
    back_off(idle);  // a flush waiting on a slow peer need not take a core
    std::erase_if(closing, [](void* r) {
      if (ucp_request_check_status(r) == UCS_INPROGRESS) return false;
      ucp_request_free(r);
      return true;
    });
  }
  const bool all_closed = closing.empty();
  // A close that could not finish (its flush waits on a peer that is gone or frozen) is
  // released to UCX: ucp_worker_destroy completes released close requests itself, and
  // asserts on one still owned by the caller.
  for (void* r : closing) ucp_request_free(r);
  return all_closed;
}

// ---- registration ----------------------------------------------------------------------

void UcxTransport::require_reachable(MemoryType type, const void* p, size_t bytes,
                                     const char* what) const {
  if (type == MemoryType::kDevice && !ucx_cuda_)
    throw Error(ErrorKind::kRuntime,
                fmt::format("{}: {} bytes of device memory at {}, but this UCX reaches host "
                            "memory only (it has no CUDA support)",
                            what, bytes, p),
                "put a StagingTransport in front (pipeline/runtime/device_transport.h does "
                "for training)");
}

MemoryRegion UcxTransport::register_memory(void* p, size_t bytes, MemoryType type) {
  CONVEYOR_REQUIRE(p != nullptr && bytes > 0, "register_memory: empty buffer ({} bytes at {})",
                   bytes, p);
  require_reachable(type, p, bytes, "register_memory");
  // The caller's word is checked once here, where it is cheap (messages are not checked): UCX
  // told that host memory is device memory would fault. Host memory is not asked about:
  // asking would start CUDA in every CPU run on a GPU host.
  CONVEYOR_CHECK(type == MemoryType::kHost || kernels::is_device_pointer(p),
                 "register_memory: [{}, +{}) was given as device memory but CUDA does not "
                 "know it as such",
                 p, bytes);
  std::lock_guard lock(p2p_mu_);
  auto region = std::make_unique<Region>(this);
  region->base = p;
  region->bytes = bytes;
  region->type = type;
  auto b = reinterpret_cast<uintptr_t>(p);
  auto next = regions_.lower_bound(b);
  bool overlaps =
      (next != regions_.end() && next->first < b + bytes) ||
      (next != regions_.begin() && std::prev(next)->first + std::prev(next)->second->bytes > b);
  if (overlaps) {
    region->owner_ = nullptr;
    throw Error(ErrorKind::kUsage,
                fmt::format("register_memory: [{}, +{}) overlaps a registered region", p, bytes));
  }
  ucp_mem_map_params_t mp{};
  mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH |
                  UCP_MEM_MAP_PARAM_FIELD_MEMORY_TYPE;
  mp.address = p;
  mp.length = bytes;
  mp.memory_type = ucx_memory_type(type);
  ucs_status_t st = ucp_mem_map(context_, &mp, &region->memh);
  if (st != UCS_OK) {
    region->owner_ = nullptr;
    ucx_check(st, "memory registration (ucp_mem_map)");
  }
  regions_[b] = region.get();
  return MemoryRegion(std::move(region));
}

void UcxTransport::deregister(Region* r) noexcept {
  std::lock_guard lock(p2p_mu_);
  regions_.erase(reinterpret_cast<uintptr_t>(r->base));
  if (context_) ucp_mem_unmap(context_, r->memh);
}

const UcxTransport::Region* UcxTransport::find_region(const void* p, size_t n,
                                                      const MemoryRegion* mr) const {
  if (mr != nullptr) {
    const auto* base = mr->impl();
    const auto* impl = base && base->backend == this ? static_cast<const Region*>(base) : nullptr;
    CONVEYOR_REQUIRE(impl != nullptr && impl->owner_ == this && impl->contains(p, n),
                     "the memory region passed with {} bytes at {} does not contain them", n, p);
    return impl;
  }
  if (n == 0 || regions_.empty()) return nullptr;
  auto it = regions_.upper_bound(reinterpret_cast<uintptr_t>(p));
  if (it == regions_.begin()) return nullptr;
  --it;
  return it->second->contains(p, n) ? it->second : nullptr;
}

// ---- point-to-point --------------------------------------------------------------------

Request UcxTransport::post(bool is_send, int peer, uint64_t ucx_tag, Tag tag, void* p, size_t bytes,
                           const MemoryRegion* mr, MemoryType type) {
  // The state was allocated after the previous operation left (see the end): allocating here
  // would delay the message by a malloc.
  auto s = spare_state_ ? std::move(spare_state_) : std::make_shared<Request::State>();
  s->is_send = is_send;
  s->peer = peer;
  s->tag = tag;
  s->bytes = bytes;
  s->user_ptr = p;
  if (ep_status_[peer] != UCS_OK) {
    throw Error(ErrorKind::kPeerFailed,
                fmt::format("rank {} is unreachable: UCX reported {} on its connection", peer,
                            ucs_status_string(static_cast<ucs_status_t>(ep_status_[peer]))));
  }
  require_reachable(type, p, bytes, is_send ? "isend" : "irecv");
  const Region* region = find_region(p, bytes, mr);
  CONVEYOR_CHECK(region == nullptr || region->type == type,
                 "{}: {} bytes at {} given as {} memory lie in a region registered as {} memory",
                 is_send ? "isend" : "irecv", bytes, p, kernels::memory_type_name(type),
                 kernels::memory_type_name(region->type));
  ucp_mem_h memh = region ? region->memh : nullptr;
  ucp_request_param_t prm{};
  prm.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA |
                     UCP_OP_ATTR_FIELD_MEMORY_TYPE | (memh ? UCP_OP_ATTR_FIELD_MEMH : 0);
  prm.user_data = s.get();
  prm.memory_type = ucx_memory_type(type);
  prm.memh = memh;
  ucp_tag_recv_info_t info{};
  void* r;
  if (is_send) {
    prm.cb.send = on_send_done;
    r = ucp_tag_send_nbx(eps_[peer], p, bytes, ucx_tag, &prm);
  } else {
    // UCX 1.13 leaves recv_info unset when a receive completes at once (the message was
    // already waiting), so ask for the callback instead: it always carries the length.
    prm.op_attr_mask |= UCP_OP_ATTR_FIELD_RECV_INFO | UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
    prm.recv_info.tag_info = &info;
    prm.cb.recv = on_recv_done;
    r = ucp_tag_recv_nbx(worker_, p, bytes, ucx_tag, ~uint64_t{0}, &prm);
  }
  if (r == nullptr) {  // completed at once; no callback will come
    s->status = UCS_OK;
    s->received = is_send ? bytes : info.length;
    mark_done(*s);
  } else if (UCS_PTR_IS_ERR(r)) {
    s->status = UCS_PTR_STATUS(r);
    mark_done(*s);
  } else {
    s->ucx = r;
    if (in_flight_.size() > 1024) {  // forget completed requests whose handles were dropped
      in_flight_.for_each([this](Request::State& f) {
        if (!f.done || f.keep_alive.use_count() > 1) return;
        in_flight_.remove(f);
      });
    }
    in_flight_.insert(s);
  }
  spare_state_ = std::make_shared<Request::State>();  // for the next operation
  return Request(std::move(s));
}

Request UcxTransport::isend(int peer, Tag tag, const void* p, size_t bytes, const MemoryRegion* mr,
                            MemoryType type) {
  CONVEYOR_REQUIRE(peer >= 0 && peer < options_.world_size && peer != options_.rank,
                   "isend: rank {} cannot send to rank {} (world size {})", options_.rank, peer,
                   options_.world_size);
  CONVEYOR_CHECK(tag <= kMaxTag, "isend: tag {:#x} is wider than {} bits", tag, kTagBits);
  ProgressThread::Caller present(progress_.get());
  std::lock_guard lock(p2p_mu_);
  check_peers();
  return post(true, peer, pack_tag(options_.rank, tag), tag, const_cast<void*>(p), bytes, mr, type);
}

Request UcxTransport::irecv(int peer, Tag tag, void* p, size_t bytes, const MemoryRegion* mr,
                            MemoryType type) {
  CONVEYOR_REQUIRE(peer >= 0 && peer < options_.world_size && peer != options_.rank,
                   "irecv: rank {} cannot receive from rank {} (world size {})", options_.rank,
                   peer, options_.world_size);
  CONVEYOR_CHECK(tag <= kMaxTag, "irecv: tag {:#x} is wider than {} bits", tag, kTagBits);
  ProgressThread::Caller present(progress_.get());
  std::lock_guard lock(p2p_mu_);
  check_peers();
  return post(false, peer, pack_tag(peer, tag), tag, p, bytes, mr, type);
}

void UcxTransport::progress() {
  while (ucp_worker_progress(worker_) != 0) {
  }
}

void UcxTransport::check_peers() {
  if (boot_ && boot_->failed()) {
    cancel_receives();
    boot_->throw_failure();
  }
}

void UcxTransport::cancel_receives() {
  if (receives_cancelled_ || !worker_) return;
  receives_cancelled_ = true;
  std::vector<Request::State*> pending;
  in_flight_.for_each([&](Request::State& s) {
    if (!s.is_send && !s.done && s.ucx) {
      ucp_request_cancel(worker_, s.ucx);
      pending.push_back(&s);
    }
  });
  // Cancellation completes through the callback; give UCX a bounded moment.
  auto deadline = Deadline::after_seconds(1.0);
  while (!deadline.expired() &&
         std::any_of(pending.begin(), pending.end(), [](auto* s) { return !s->done.load(); }))
    ucp_worker_progress(worker_);
}

void UcxTransport::finalize(Request::State& s) {
  if (!s.finalized) {
    s.finalized = true;
    in_flight_.remove(s);  // the caller's handle keeps `s` alive
  }
  auto status = static_cast<ucs_status_t>(s.status);
  if (status == UCS_OK) {
    if (!s.is_send && s.received != s.bytes)
      throw Error(ErrorKind::kRuntime,
                  fmt::format("size mismatch: {} expected {} bytes but rank {} sent {}",
                              describe_op(s), s.bytes, s.peer, s.received),
                  "both ranks must agree on message sizes (same model and batch configuration)");
    return;
  }
  if (boot_ && boot_->failed()) boot_->throw_failure();
  switch (status) {
    case UCS_ERR_MESSAGE_TRUNCATED:
      throw Error(
          ErrorKind::kRuntime,
          fmt::format("size mismatch: {}: rank {} sent a longer message", describe_op(s), s.peer),
          "both ranks must agree on message sizes (same model and batch configuration)");
    case UCS_ERR_CANCELED:
      throw Error(ErrorKind::kRuntime, fmt::format("{} was cancelled", describe_op(s)));
    case UCS_ERR_ENDPOINT_TIMEOUT:
    case UCS_ERR_CONNECTION_RESET:
    case UCS_ERR_UNREACHABLE:
      throw Error(ErrorKind::kPeerFailed,
                  fmt::format("rank {} failed: {} ended with UCX error '{}'", s.peer,
                              describe_op(s), ucs_status_string(status)),
                  fmt::format("see rank {}'s log", s.peer));
    default:
      throw Error(ErrorKind::kRuntime,
                  fmt::format("{} failed in UCX: {}", describe_op(s), ucs_status_string(status)));
  }
}

void UcxTransport::throw_timeout(const Request::State& s, const char* what) const {
  throw Error(ErrorKind::kRuntime,
              fmt::format("rank {}: {} did not complete before the deadline ({})", options_.rank,
                          describe_op(s), what),
              s.is_send ? "the peer may be stuck or never posted the matching receive"
                        : "the peer may be stuck or never sent the matching message");
}

bool UcxTransport::test(Request& r) {
  CONVEYOR_REQUIRE(r.valid(), "test: empty Request");
  ProgressThread::Caller present(progress_.get());
  auto& s = *r.state();
  if (!s.linked && s.done.load(std::memory_order_acquire)) {
    finalize(s);  // it completed when posted: finalize touches only `s`, no lock needed
    return true;
  }
  std::lock_guard lock(p2p_mu_);
  if (!s.done.load(std::memory_order_acquire)) progress();
  if (s.done.load(std::memory_order_acquire)) {
    finalize(s);
    return true;
  }
  check_peers();
  return false;
}

// Polls spin for a short while (lowest latency), then give the core away between polls: with
// more ranks than cores (the CPU demo runs 4 stages on 2 cores) a spinning waiter would take
// the CPU from the very stage it is waiting for.
constexpr unsigned kSpinPolls = 2000;
constexpr unsigned kYieldPolls = 4000;
// The first polls of a wait do not read the clock (a clock read costs as much as a poll, and
// short waits are the common case); they last well under a millisecond.
constexpr unsigned kClockFreePolls = 256;

// While spinning, a wait keeps the lock for a batch of polls: taking and releasing it costs
// about as much as one poll of a shared-memory worker, and the 8-byte latency is made of
// polls. Batches stay short so another thread's isend/irecv or
// wait gets the worker within a microsecond or so.
unsigned UcxTransport::polls_per_lock(unsigned idle_polls) {
  return idle_polls < kSpinPolls ? 32 : 1;
}

void UcxTransport::back_off(unsigned idle_polls) {
  if (idle_polls < kSpinPolls) return;
  if (idle_polls < kYieldPolls) {
    std::this_thread::yield();
  } else {
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

void UcxTransport::wait(Request& r, Deadline deadline) {
  CONVEYOR_REQUIRE(r.valid(), "wait: empty Request");
  ProgressThread::Caller present(progress_.get());
  auto& s = *r.state();
  if (!s.linked && s.done.load(std::memory_order_acquire)) {
    finalize(s);  // it completed when posted (small sends): no lock needed
    return;
  }
  // `idle` counts polls since UCX last did something and drives the back-off: while data
  // flows (a large message over TCP completes only as its fragments are read) the waiter
  // keeps polling; a sleeping one would stall the stream.
  for (unsigned polls = 0, idle = 0;;) {
    {
      std::lock_guard lock(p2p_mu_);
      for (unsigned k = polls_per_lock(idle); k > 0; --k, ++polls) {
        if (s.done.load(std::memory_order_acquire)) break;
        idle = ucp_worker_progress(worker_) != 0 ? 0 : idle + 1;
      }
      if (s.done.load(std::memory_order_acquire)) {
        finalize(s);
        return;
      }
      check_peers();
    }
    if (polls >= kClockFreePolls && deadline.expired()) throw_timeout(s, "wait");
    back_off(idle);
  }
}

void UcxTransport::wait_all(std::span<Request> rs, Deadline deadline) {
  for (auto& r : rs) CONVEYOR_REQUIRE(r.valid(), "wait_all: empty Request");
  ProgressThread::Caller present(progress_.get());
  size_t first_pending = 0;  // requests before it are complete
  auto advance = [&] {
    while (first_pending < rs.size() && rs[first_pending].done()) ++first_pending;
    return first_pending == rs.size();
  };
  for (unsigned polls = 0, idle = 0;;) {  // as in wait()
    {
      std::lock_guard lock(p2p_mu_);
      bool all_done = advance();
      for (unsigned k = polls_per_lock(idle); k > 0 && !all_done; --k, ++polls) {
        idle = ucp_worker_progress(worker_) != 0 ? 0 : idle + 1;
        all_done = advance();
      }
      if (all_done) {
        for (auto& r : rs) finalize(*r.state());
        return;
      }
      check_peers();
    }
    if (polls >= kClockFreePolls && deadline.expired())
      throw_timeout(*rs[first_pending].state(), "wait_all");
    back_off(idle);
  }
}

void UcxTransport::cancel(Request& r) {
  if (!r.valid()) return;
  ProgressThread::Caller present(progress_.get());
  auto& s = *r.state();
  if (!s.is_send) {
    // A receive: withdrawn at once; UCX completes it (as cancelled, or with its message if
    // that came first) on the next progress.
    std::lock_guard lock(p2p_mu_);
    if (!s.done.load(std::memory_order_acquire) && s.ucx) ucp_request_cancel(worker_, s.ucx);
    // A receive whose data is already being written finishes first; bounded all the same.
    const auto deadline = Deadline::after_seconds(kCancelSendSeconds);
    while (!s.done.load(std::memory_order_acquire) && !deadline.expired())
      ucp_worker_progress(worker_);
    if (!s.done.load(std::memory_order_acquire))
      throw Error(ErrorKind::kRuntime,
                  fmt::format("cancel: {} is still in flight after {} s; its buffer stays in use "
                              "until the transport is destroyed",
                              describe_op(s), kCancelSendSeconds));
    s.finalized = true;  // a later wait or test reports "cancelled" (or the message it got)
    in_flight_.remove(s);
    return;
  }
  // A send cannot be withdrawn: wait, bounded, until UCX no longer reads the buffer.
  try {
    wait(r, Deadline::after_seconds(kCancelSendSeconds));
  } catch (const Error& e) {
    if (s.done.load(std::memory_order_acquire)) return;  // it failed: the buffer is free
    throw Error(e.kind(),
                fmt::format("cancel: {} is still in flight after {} s; its buffer stays in use "
                            "until the transport is destroyed",
                            describe_op(s), kCancelSendSeconds),
                "the peer may be stuck or never posted the matching receive");
  }
}

// ---- collectives (over the bootstrap connection) ---------------------------------------

std::vector<double> UcxTransport::all_reduce_sum(std::span<const double> values,
                                                 Deadline deadline) {
  if (!boot_) return {values.begin(), values.end()};
  std::vector<uint8_t> payload(values.size() * sizeof(double));
  if (!values.empty()) std::memcpy(payload.data(), values.data(), payload.size());
  auto result =
      boot_->collective(wire::CollectiveOp::kAllReduceSum, 0, std::move(payload), deadline);
  CONVEYOR_CHECK(result.size() == values.size() * sizeof(double),
                 "all_reduce_sum: the service returned {} bytes for {} values", result.size(),
                 values.size());
  std::vector<double> out(values.size());
  if (!out.empty()) std::memcpy(out.data(), result.data(), result.size());
  return out;
}

void UcxTransport::barrier(Deadline deadline) {
  if (boot_) boot_->collective(wire::CollectiveOp::kBarrier, 0, {}, deadline);
}

void UcxTransport::broadcast(std::vector<uint8_t>& bytes, int root, Deadline deadline) {
  CONVEYOR_REQUIRE(root >= 0 && root < options_.world_size, "broadcast: root {} is outside 0..{}",
                   root, options_.world_size - 1);
  CONVEYOR_REQUIRE(bytes.size() <= wire::kMaxPayload,
                   "broadcast: {} bytes exceed the limit of {} bytes", bytes.size(),
                   wire::kMaxPayload);
  if (!boot_) return;
  auto payload = options_.rank == root ? bytes : std::vector<uint8_t>{};
  bytes = boot_->collective(wire::CollectiveOp::kBroadcast, root, std::move(payload), deadline);
}

// ---- failure and shutdown ----------------------------------------------------------------

void UcxTransport::abort(const std::string& reason) {
  if (aborted_) return;
  aborted_ = true;
  CONVEYOR_LOG_ERROR("transport: rank {} aborting: {}", options_.rank, reason);
  if (server_) {
    // Rank 0 hosts the service: tell everyone now, before this process goes away.
    server_->fail_job(options_.rank, ErrorKind::kPeerFailed, FailureCause::kAborted,
                      fmt::format("rank {} (host {}, pid {}) aborted: {}", options_.rank,
                                  host_name(), ::getpid(), reason));
  } else if (boot_) {
    boot_->abort(reason);
  }
}

void UcxTransport::shutdown(Deadline deadline) {
  if (shut_down_) return;
  barrier(deadline);       // nobody sends to us any more
  stop_progress_thread();  // the endpoints' close below polls on its own
  {
    std::lock_guard lock(p2p_mu_);
    // Flags 0: a flush, so our last sends reach their peers. After the barrier nothing is in
    // flight, and a flush takes a round trip; one that does not complete soon waits for a
    // peer that has already gone (or a link that drops), and never will.
    const auto soon = Deadline::after_seconds(kEndpointCloseSeconds);
    if (!close_endpoints(0, soon.at() < deadline.at() ? soon : deadline))
      CONVEYOR_LOG_WARN("transport: endpoints did not close before the deadline");
  }
  shut_down_ = true;
  if (boot_) boot_->bye();
  if (server_ && !server_->wait_all_departed(deadline))
    CONVEYOR_LOG_WARN("transport: not every rank said goodbye before the deadline");
}

}  // namespace conveyor::transport
