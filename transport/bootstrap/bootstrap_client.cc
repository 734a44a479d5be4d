#include "transport/bootstrap/bootstrap_client.h"

#include <poll.h>
#include <unistd.h>

#include "common/log.h"
#include "common/net.h"
#include "common/printable.h"

namespace conveyor::transport {

using wire::ByteReader;
using wire::ByteWriter;
using wire::MsgType;

namespace {

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

FailureCause cause_from_wire(uint32_t c) {
  return c <= static_cast<uint32_t>(FailureCause::kAborted) ? static_cast<FailureCause>(c)
                                                            : FailureCause::kOther;
}

// "2, 4-6, 9": ranks in ascending order, runs collapsed.
std::string rank_list(const std::vector<int>& ranks) {
  std::string out;
  for (size_t i = 0; i < ranks.size();) {
    size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    if (!out.empty()) out += ", ";
    out += j == i ? fmt::format("{}", ranks[i]) : fmt::format("{}-{}", ranks[i], ranks[j]);
    i = j + 1;
  }
  return out;
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
  wire::Hello hello;
  hello.rank = options.rank;
  hello.world_size = options.world_size;
  hello.job_token = options.job_token;
  hello.fingerprint = options.fingerprint;
  hello.ucx_address = std::move(ucx_address);
  hello.host = host_name();
  hello.pid = static_cast<int32_t>(::getpid());
  const std::vector<uint8_t> hello_bytes = wire::encode_hello(hello);
  // The service closes a hello over its pre-auth limit as a stranger's; say why here, where
  // the cause is known, rather than let every rank blame rank 0.
  if (hello_bytes.size() > wire::kMaxHelloPayload)
    throw Error(ErrorKind::kUsage,
                fmt::format("rank {}'s hello to the rendezvous service is {} bytes, over the {} "
                            "it accepts before the token is checked (CONVEYOR_JOB_TOKEN: {} "
                            "bytes, UCX worker address: {} bytes)",
                            options.rank, hello_bytes.size(), wire::kMaxHelloPayload,
                            hello.job_token.size(), hello.ucx_address.size()),
                fmt::format("CONVEYOR_JOB_TOKEN may have at most {} bytes; UCX_NET_DEVICES or "
                            "UCX_TLS limit the interfaces in the worker address",
                            wire::kMaxJobTokenBytes));
  if (!send_frame(MsgType::kHello, hello_bytes))
    throw Error(ErrorKind::kRuntime,
                fmt::format("lost the connection to the rendezvous service at {}:{} while "
                            "joining",
                            options.master_addr, options.master_port));
  thread_ = std::thread([this] { monitor(); });
  std::unique_lock lock(mu_);
  cv_.wait_until(lock, deadline.at(), [&] { return welcome_.has_value() || failed(); });
  if (failed() || !welcome_) {
    lock.unlock();
    // Before giving up, ask the service who is missing (the monitor thread gets the answer).
    const std::string who = failed() ? std::string() : describe_missing_ranks();
    Error timeout(ErrorKind::kRuntime,
                  fmt::format("rank {}: not every one of the {} ranks joined the rendezvous at "
                              "{}:{} within {:g} s: {}",
                              options.rank, options.world_size, options.master_addr,
                              options.master_port, options.connect_timeout_s, who),
                  "a missing rank did not start, crashed early, or was started with another "
                  "MASTER_ADDR/MASTER_PORT/WORLD_SIZE/CONVEYOR_JOB_TOKEN (its own log says "
                  "which); CONVEYOR_CONNECT_TIMEOUT sets the wait");
    // The ranks that did join learn why this one leaves, rather than just that it did.
    if (!failed()) abort(timeout.message());
    // A constructor that throws must not leave a joinable thread behind.
    stop_ = true;
    thread_.join();
    if (failed()) throw_failure();
    throw timeout;
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

std::string BootstrapClient::describe_missing_ranks() {
  // The monitor thread is still running: it receives the answer.
  std::unique_lock lock(mu_);
  roster_.reset();
  lock.unlock();
  if (send_frame(MsgType::kRosterQuery, {})) {
    lock.lock();
    cv_.wait_for(lock, std::chrono::seconds(1), [&] { return roster_.has_value() || failed(); });
    lock.unlock();
  }
  lock.lock();
  if (!roster_) return "the rendezvous service did not say which ranks are missing";
  std::vector<bool> joined(options_.world_size, false);
  std::string present;
  constexpr size_t kNamed = 8;  // a long list says nothing more
  for (size_t i = 0; i < roster_->size(); ++i) {
    const Joined& j = (*roster_)[i];
    if (j.rank >= 0 && j.rank < options_.world_size) joined[j.rank] = true;
    if (i < kNamed)
      present += fmt::format("{}rank {} (host {}, pid {})", i ? ", " : "", j.rank, j.host, j.pid);
  }
  if (roster_->size() > kNamed) present += fmt::format(" and {} more", roster_->size() - kNamed);
  std::vector<int> missing;
  for (int r = 0; r < options_.world_size; ++r)
    if (!joined[r]) missing.push_back(r);
  return fmt::format("{} {} never joined; joined: {}", missing.size() == 1 ? "rank" : "ranks",
                     rank_list(missing), present);
}

void BootstrapClient::set_failure(JobFailure f) {
  {
    std::lock_guard lock(mu_);
    if (failed_.load()) return;
    failure_ = f;
    failed_.store(true, std::memory_order_release);
  }
  cv_.notify_all();
  // Tell the supervisor who is to blame before this rank starts failing because of it.
  if (f.rank >= 0) send_failure_report(options_.failure_report_fd, f);
}

JobFailure BootstrapClient::failure() const {
  std::lock_guard lock(mu_);
  return failure_;
}

void BootstrapClient::throw_failure() const {
  JobFailure f = failure();
  std::string hint =
      f.rank < 0 ? std::string("see the message above")
      : f.cause == FailureCause::kSilent
          ? fmt::format(
                "rank {}'s log ends where it stopped; CONVEYOR_HEARTBEAT_TIMEOUT sets "
                "how long a rank may be silent",
                f.rank)
          : fmt::format("see rank {}'s log for the cause", f.rank);
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
    // Losing the service means losing rank 0, which hosts it.
    auto lost = [&](FailureCause cause, const std::string& what) {
      connected = false;
      if (leaving_) return;  // we said goodbye: the service closing is expected
      JobFailure f{0, ErrorKind::kPeerFailed, cause, options_.master_addr, 0, {}};
      const std::string who =
          fmt::format("rank 0 (host {}, the rendezvous service)", options_.master_addr);
      if (cause == FailureCause::kSilent)
        f.reason = fmt::format(
            "{} went silent: no heartbeat from it for {:.1f} s (the process is hung or "
            "stopped, or its host is unreachable)",
            who, options_.heartbeat_timeout_s);
      else
        f.reason = fmt::format("{} died or is unreachable: {}", who, what);
      set_failure(std::move(f));
    };
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      while (connected) {
        long n = read_some(fd_.get(), buf.data(), buf.size());
        if (n == -1) break;
        if (n <= 0) {
          lost(FailureCause::kDied, "the connection to the rendezvous service closed");
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
                JobFailure jf;
                jf.kind = kind_from_wire(rd.u32());
                jf.reason = printable(rd.str());
                set_failure(std::move(jf));
                break;
              }
              case MsgType::kFailure: {
                JobFailure jf;
                jf.rank = rd.i32();
                jf.kind = kind_from_wire(rd.u32());
                jf.reason = printable(rd.str());
                jf.cause = cause_from_wire(rd.u32());
                jf.host = printable(rd.str(), kMaxPeerHostBytes);
                jf.pid = rd.i32();
                set_failure(std::move(jf));
                break;
              }
              case MsgType::kRoster: {
                const int world = rd.i32();
                const int count = rd.i32();
                if (world != options_.world_size || count < 0 || count > world)
                  throw Error(ErrorKind::kRuntime, "a malformed roster");
                std::vector<Joined> joined;
                for (int i = 0; i < count; ++i) {
                  Joined j;
                  j.rank = rd.i32();
                  j.host = printable(rd.str(), kMaxPeerHostBytes);
                  j.pid = rd.i32();
                  joined.push_back(std::move(j));
                }
                std::lock_guard lock(mu_);
                roster_ = std::move(joined);
                cv_.notify_all();
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
                break;
              case MsgType::kByeAck: {
                std::lock_guard lock(mu_);
                bye_acked_ = true;
                cv_.notify_all();
                break;
              }
              default:
                throw Error(ErrorKind::kRuntime, "unexpected message from the service");
            }
          }
        } catch (const Error& e) {
          lost(FailureCause::kOther, "it sent a malformed message: " + e.message());
        }
      }
    }
    auto now = Clock::now();
    if (connected &&
        std::chrono::duration<double>(now - last_heard).count() > options_.heartbeat_timeout_s &&
        std::chrono::duration<double>(now - last_heard).count() >
            silence_limit_s(fd_.get(), options_.heartbeat_timeout_s)) {
      lost(FailureCause::kSilent, {});
    }
    if (connected && !leaving_ &&
        std::chrono::duration<double>(now - last_sent).count() >= hb_interval) {
      last_sent = now;
      if (!send_frame(MsgType::kHeartbeat, {}))
        lost(FailureCause::kDied, "cannot send to the rendezvous service");
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
    if (!send_frame(MsgType::kBye, {})) return;
    // Until the service has read it (bounded): closing with unread heartbeats in the socket
    // resets the connection, and the reset can overtake the goodbye on a slow link.
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::duration<double>(kByeAckSeconds),
                 [&] { return bye_acked_ || failed(); });
  } catch (...) {
  }
}

}  // namespace conveyor::transport
