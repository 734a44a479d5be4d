#include "transport/bootstrap_client.h"

#include <poll.h>
#include <unistd.h>

#include "common/log.h"

namespace conveyor::transport {

using wire::ByteReader;
using wire::ByteWriter;
using wire::MsgType;

namespace {

std::string hostname() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

const char* op_name(wire::CollectiveOp op) {
  switch (op) {
    case wire::CollectiveOp::kAllReduceSum:
      return "all_reduce_sum";
    case wire::CollectiveOp::kBarrier:
      return "barrier";
    case wire::CollectiveOp::kBroadcast:
      return "broadcast";
  }
  return "collective";
}

ErrorKind kind_from_wire(uint32_t k) {
  switch (k) {
    case static_cast<uint32_t>(ErrorKind::kUsage):
      return ErrorKind::kUsage;
    case static_cast<uint32_t>(ErrorKind::kRuntime):
      return ErrorKind::kRuntime;
    default:
      return ErrorKind::kPeerFailed;
  }
}

}  // namespace

BootstrapClient::BootstrapClient(const Options& options, std::vector<uint8_t> ucx_address,
                                 Deadline deadline)
    : options_(options) {
  fd_ = connect_tcp(options.master_addr, options.master_port, deadline);
  ByteWriter w;
  w.u32(wire::kVersion)
      .i32(options.rank)
      .i32(options.world_size)
      .str(options.job_token)
      .str(options.fingerprint)
      .bytes(ucx_address)
      .str(hostname())
      .i32(static_cast<int32_t>(::getpid()));
  if (!send_frame(MsgType::kHello, w.buffer()))
    throw Error(ErrorKind::kRuntime,
                fmt::format("lost the connection to the rendezvous service at {}:{} while "
                            "joining",
                            options.master_addr, options.master_port));
  thread_ = std::thread([this] { monitor(); });
  std::unique_lock lock(mu_);
  cv_.wait_until(lock, deadline.at(), [&] { return welcome_.has_value() || failed(); });
  if (failed() || !welcome_) {
    // A constructor that throws must not leave a joinable thread behind.
    lock.unlock();
    stop_ = true;
    thread_.join();
    if (failed()) throw_failure();
    throw Error(
        ErrorKind::kRuntime,
        fmt::format("rank {}: not every one of the {} ranks joined the rendezvous at "
                    "{}:{} before the deadline",
                    options.rank, options.world_size, options.master_addr, options.master_port),
        "start all ranks with the same MASTER_ADDR/MASTER_PORT/WORLD_SIZE; "
        "CONVEYOR_CONNECT_TIMEOUT sets the wait");
  }
  addresses_ = std::move(*welcome_);
}

BootstrapClient::~BootstrapClient() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

bool BootstrapClient::send_frame(MsgType type, const std::vector<uint8_t>& payload) {
  auto frame = wire::encode_frame(type, payload);
  std::lock_guard lock(write_mu_);
  return send_all(fd_.get(), frame.data(), frame.size(),
                  Deadline::after_seconds(2.0 + static_cast<double>(frame.size()) / 100e6));
}

void BootstrapClient::set_failure(JobFailure f) {
  {
    std::lock_guard lock(mu_);
    if (failed_.load()) return;
    failure_ = std::move(f);
    failed_.store(true, std::memory_order_release);
  }
  cv_.notify_all();
}

JobFailure BootstrapClient::failure() const {
  std::lock_guard lock(mu_);
  return failure_;
}

void BootstrapClient::throw_failure() const {
  JobFailure f = failure();
  std::string hint = f.rank >= 0 ? fmt::format("see rank {}'s log for the cause", f.rank)
                                 : std::string("see the message above");
  throw Error(f.kind, f.reason, hint);
}

void BootstrapClient::monitor() {
  const double hb_interval = std::min(0.25, options_.heartbeat_timeout_s / 4);
  auto last_sent = Clock::now();
  auto last_heard = Clock::now();
  wire::FrameDecoder decoder;
  std::vector<uint8_t> buf(64 * 1024);
  bool connected = true;
  while (!stop_) {
    pollfd p{fd_.get(), POLLIN, 0};
    ::poll(&p, 1, connected ? 50 : 100);
    if (!connected) continue;  // after a loss there is nothing more to read; wait for stop
    auto lost = [&](const std::string& why) {
      connected = false;
      if (leaving_) return;  // we said goodbye: the service closing is expected
      set_failure({0, ErrorKind::kPeerFailed,
                   fmt::format("rank 0 died or is unreachable: {} (rank 0 hosts the "
                               "rendezvous service)",
                               why)});
    };
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      while (connected) {
        long n = read_some(fd_.get(), buf.data(), buf.size());
        if (n == -1) break;
        if (n <= 0) {
          lost("the connection to the rendezvous service closed");
          break;
        }
        last_heard = Clock::now();
        decoder.feed(buf.data(), static_cast<size_t>(n));
        try {
          while (auto f = decoder.next(wire::kMaxPayload)) {
            ByteReader rd(f->payload);
            switch (f->type) {
              case MsgType::kWelcome: {
                int world = rd.i32();
                std::vector<std::vector<uint8_t>> addrs;
                for (int r = 0; r < world; ++r) addrs.push_back(rd.bytes());
                std::lock_guard lock(mu_);
                welcome_ = std::move(addrs);
                cv_.notify_all();
                break;
              }
              case MsgType::kReject: {
                auto kind = kind_from_wire(rd.u32());
                set_failure({-1, kind, rd.str()});
                break;
              }
              case MsgType::kFailure: {
                int rank = rd.i32();
                auto kind = kind_from_wire(rd.u32());
                set_failure({rank, kind, rd.str()});
                break;
              }
              case MsgType::kResult: {
                uint64_t seq = rd.u64();
                auto data = rd.bytes();
                std::lock_guard lock(mu_);
                results_[seq] = std::move(data);
                cv_.notify_all();
                break;
              }
              case MsgType::kHeartbeat:
              case MsgType::kByeAck:
                break;
              default:
                throw Error(ErrorKind::kRuntime, "unexpected message from the service");
            }
          }
        } catch (const Error& e) {
          lost("it sent a malformed message: " + e.message());
        }
      }
    }
    auto now = Clock::now();
    if (connected &&
        std::chrono::duration<double>(now - last_heard).count() > options_.heartbeat_timeout_s) {
      lost(fmt::format("no heartbeat from it for {:.1f} s", options_.heartbeat_timeout_s));
    }
    if (connected && !leaving_ &&
        std::chrono::duration<double>(now - last_sent).count() >= hb_interval) {
      last_sent = now;
      if (!send_frame(MsgType::kHeartbeat, {})) lost("cannot send to the rendezvous service");
    }
  }
}

std::vector<uint8_t> BootstrapClient::collective(wire::CollectiveOp op, int root,
                                                 std::vector<uint8_t> payload, Deadline deadline) {
  std::lock_guard coll(coll_mu_);
  if (failed()) throw_failure();
  uint64_t seq = next_seq_++;
  ByteWriter w;
  w.u64(seq).u32(static_cast<uint32_t>(op)).i32(root).bytes(payload);
  if (!send_frame(MsgType::kCollective, w.buffer())) {
    // The monitor will tell why (rank 0 gone); give it a moment to notice.
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(2), [&] { return failed(); });
    lock.unlock();
    if (failed()) throw_failure();
    throw Error(ErrorKind::kPeerFailed,
                "rank 0 is unreachable: cannot send to the rendezvous service");
  }
  std::unique_lock lock(mu_);
  cv_.wait_until(lock, deadline.at(), [&] { return results_.count(seq) > 0 || failed(); });
  // A result that arrived before the failure news is still valid: the collective completed.
  auto it = results_.find(seq);
  if (it == results_.end() && failed()) {
    lock.unlock();
    throw_failure();
  }
  if (it == results_.end())
    throw Error(ErrorKind::kRuntime,
                fmt::format("rank {}: {} (collective #{}) timed out: not every rank reached it",
                            options_.rank, op_name(op), seq),
                "a rank is stuck or calls collectives in a different order");
  auto result = std::move(it->second);
  results_.erase(it);
  return result;
}

void BootstrapClient::abort(const std::string& reason) noexcept {
  try {
    ByteWriter w;
    w.str(reason);
    send_frame(MsgType::kAbort, w.buffer());
  } catch (...) {
  }
}

void BootstrapClient::bye() noexcept {
  leaving_ = true;
  try {
    send_frame(MsgType::kBye, {});
  } catch (...) {
  }
}

}  // namespace conveyor::transport
