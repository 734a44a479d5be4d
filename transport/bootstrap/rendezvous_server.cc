#include "transport/bootstrap/rendezvous_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <vector>

#include "common/log.h"
#include "common/log_rate_limit.h"
#include "common/printable.h"
#include "transport/bootstrap/socket.h"
#include "transport/bootstrap/wire.h"

namespace conveyor::transport {

using wire::ByteReader;
using wire::ByteWriter;
using wire::CollectiveOp;
using wire::MsgType;

namespace {

// How long accepting pauses when the process is out of descriptors and no waiting stranger
// can give its place.
constexpr int kAcceptPauseMs = 50;

enum class RankState { kAbsent, kJoined, kDeparted, kDead };

struct Conn {
  Fd fd;
  wire::FrameDecoder decoder;
  int rank = -1;  // -1 until the hello is accepted
  Clock::time_point opened = Clock::now();
  Clock::time_point last_heard = Clock::now();
  bool closing = false;
  std::string close_reason;
  FailureCause close_cause = FailureCause::kDied;  // kSilent when dropped for silence
  std::string peer_ip;  // where the connection came from; empty for loopback
};

struct PendingCollective {
  CollectiveOp op;
  int root = 0;
  size_t size = 0;
  int first_rank = -1;
  int count = 0;
  std::vector<std::vector<uint8_t>> contributions;
};

// Constant-time comparison, so the token cannot be guessed byte by byte from timing.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned diff = a.size() == b.size() ? 0 : 1;
  size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? a[i] : 0, y = i < b.size() ? b[i] : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

const char* op_name(CollectiveOp op) {
  switch (op) {
    case CollectiveOp::kAllReduceSum:
      return "all_reduce_sum";
    case CollectiveOp::kBarrier:
      return "barrier";
    case CollectiveOp::kBroadcast:
      return "broadcast";
  }
  return "unknown collective";
}

}  // namespace

struct RendezvousServer::State {
  ServiceConfig cfg;
  Fd listener;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::unique_ptr<Conn>> conns;  // pending and admitted
  // The connections that have not said hello yet, oldest first (a subset of conns). Closed
  // and admitted ones are pruned before accepting and at the end of every pass; while
  // accepting, every entry is live, and there are at most kMaxPreAuthConnections.
  std::deque<Conn*> pre_auth;
  std::vector<Conn*> by_rank;
  std::vector<RankState> rank_state;
  std::vector<std::vector<uint8_t>> addresses;
  std::vector<std::string> hosts;  // by rank, from the hello
  std::vector<int> pids;
  bool welcomed = false;
  bool failed = false;
  std::vector<uint8_t> failure_frame;  // sent to anyone who joins after the failure
  std::map<uint64_t, PendingCollective> collectives;
  Clock::time_point last_heartbeat_sent = Clock::now();
  LogRateLimit refused_log_limit{kRefusedLogBurst, std::chrono::seconds(kRefusedLogWindowSeconds)};

  void send(Conn& c, const std::vector<uint8_t>& frame) {
    if (c.closing) return;
    auto deadline = Deadline::after_seconds(2.0 + static_cast<double>(frame.size()) / 100e6);
    if (!send_all(c.fd.get(), frame.data(), frame.size(), deadline)) {
      c.closing = true;
      c.close_reason = "was lost (a send to it failed)";
    }
  }

  void reject(Conn& c, ErrorKind kind, const std::string& reason) {
    ByteWriter w;
    w.u32(static_cast<uint32_t>(kind)).str(reason);
    send(c, wire::encode_frame(MsgType::kReject, w.buffer()));
    c.closing = true;
    c.close_reason.clear();  // the caller has logged why (or reports it as the job's failure)
  }

  // "rank 2 (host vm, pid 4242)": the words every message about a rank uses.
  std::string who(int rank) const {
    return fmt::format("rank {} (host {}, pid {})", rank, hosts[rank], pids[rank]);
  }

  // Marks the job failed because of `rank` and tells every other live rank.
  void fail(int rank, ErrorKind kind, FailureCause cause, const std::string& reason) {
    const bool known = rank >= 0 && rank < cfg.world_size;
    if (known && rank_state[rank] == RankState::kJoined) rank_state[rank] = RankState::kDead;
    if (failed) return;  // the first failure is the one reported
    failed = true;
    CONVEYOR_LOG_ERROR("rendezvous: job failed: {}", reason);
    ByteWriter w;
    w.i32(rank).u32(static_cast<uint32_t>(kind)).str(reason);
    w.u32(static_cast<uint32_t>(cause)).str(known ? hosts[rank] : "").i32(known ? pids[rank] : 0);
    failure_frame = wire::encode_frame(MsgType::kFailure, w.buffer());
    for (int r = 0; r < cfg.world_size; ++r) {
      if (r != rank && by_rank[r] && rank_state[r] == RankState::kJoined)
        send(*by_rank[r], failure_frame);
    }
    cv.notify_all();
  }

  // Logs a line about a connection that was refused before it proved to be one of ours:
  // such lines are capped, because anyone who can reach the port can cause them.
  template <typename... Args>
  void warn_refused(fmt::format_string<Args...> format, Args&&... args) {
    if (auto note = refused_log_limit.admit(Clock::now()))
      CONVEYOR_LOG_WARN("rendezvous: {}{}", fmt::format(format, std::forward<Args>(args)...),
                        *note);
  }

  void on_hello(Conn& c, const std::vector<uint8_t>& payload) {
    wire::Hello hello = wire::decode_hello(payload);
    const int rank = hello.rank;
    const std::string host =
        printable(hello.host, kMaxPeerHostBytes) + (c.peer_ip.empty() ? "" : " at " + c.peer_ip);
    const int pid = hello.pid;
    if (hello.version != wire::kVersion) {
      // Its token cannot be read, so it may not be one of ours: refuse it and carry on.
      warn_refused("refused a connection claiming rank {}: protocol version {}, not {}", rank,
                   hello.version, wire::kVersion);
      reject(c, ErrorKind::kUsage,
             fmt::format("rank {} runs a different conveyor version (protocol {} vs {}); run "
                         "the same conveyor build on every rank",
                         rank, hello.version, wire::kVersion));
      return;
    }
    if (!same_secret(hello.job_token, cfg.job_token)) {
      // Not (provably) one of ours: refuse it and carry on.
      warn_refused("refused a connection claiming rank {} from {} pid {}: wrong job token", rank,
                   host, pid);
      reject(c, ErrorKind::kUsage,
             "the rendezvous service refused this rank: wrong CONVEYOR_JOB_TOKEN (every rank "
             "of a job must have the same token)");
      return;
    }
    if (failed) {
      send(c, failure_frame);
      c.closing = true;
      return;
    }
    std::string problem;
    if (hello.world_size != cfg.world_size)
      problem = fmt::format("rank {} has WORLD_SIZE={} but rank 0 has {}", rank, hello.world_size,
                            cfg.world_size);
    else if (rank < 0 || rank >= cfg.world_size)
      problem = fmt::format("a process claims rank {}, outside 0..{}", rank, cfg.world_size - 1);
    else if (rank_state[rank] != RankState::kAbsent)
      problem =
          fmt::format("two processes claim rank {} (second one on {} pid {})", rank, host, pid);
    else if (hello.fingerprint != cfg.fingerprint)
      problem = fmt::format(
          "rank {}'s configuration differs from rank 0's (fingerprint {} vs {}); start every "
          "rank with the same flags and config file",
          rank, printable(hello.fingerprint, 64), cfg.fingerprint);
    if (!problem.empty()) {
      reject(c, ErrorKind::kUsage, problem);
      fail(-1, ErrorKind::kUsage, FailureCause::kOther, problem);
      return;
    }
    std::vector<uint8_t> address = std::move(hello.ucx_address);
    c.rank = rank;
    hosts[rank] = host;
    pids[rank] = pid;
    by_rank[rank] = &c;
    rank_state[rank] = RankState::kJoined;
    addresses[rank] = std::move(address);
    CONVEYOR_LOG_DEBUG("rendezvous: rank {} joined from {} pid {}", rank, host, pid);
    for (int r = 0; r < cfg.world_size; ++r)
      if (rank_state[r] == RankState::kAbsent) return;
    ByteWriter w;
    w.i32(cfg.world_size);
    for (const auto& a : addresses) w.bytes(a);
    auto frame = wire::encode_frame(MsgType::kWelcome, w.buffer());
    for (Conn* r : by_rank) send(*r, frame);
    welcomed = true;
    CONVEYOR_LOG_DEBUG("rendezvous: all {} ranks joined", cfg.world_size);
  }

  void on_collective(Conn& c, const std::vector<uint8_t>& payload) {
    ByteReader rd(payload);
    uint64_t seq = rd.u64();
    auto op = static_cast<CollectiveOp>(rd.u32());
    int root = rd.i32();
    std::vector<uint8_t> data = rd.bytes();
    auto [it, fresh] = collectives.try_emplace(seq);
    PendingCollective& pc = it->second;
    if (fresh) {
      pc.op = op;
      pc.root = root;
      pc.size = data.size();
      pc.first_rank = c.rank;
      pc.contributions.resize(cfg.world_size);
    }
    bool size_matters = op == CollectiveOp::kAllReduceSum;
    if (pc.op != op || pc.root != root || (size_matters && pc.size != data.size()) ||
        !pc.contributions[c.rank].empty() ||
        (op == CollectiveOp::kAllReduceSum && data.size() % 8)) {
      fail(-1, ErrorKind::kRuntime, FailureCause::kOther,
           fmt::format("ranks disagree on collective #{}: rank {} called {}(root {}, {} bytes), "
                       "rank {} called {}(root {}, {} bytes); every rank must call the same "
                       "collectives in the same order",
                       seq, pc.first_rank, op_name(pc.op), pc.root, pc.size, c.rank, op_name(op),
                       root, data.size()));
      return;
    }
    // An empty contribution must still count as "arrived".
    pc.contributions[c.rank] = std::move(data);
    pc.contributions[c.rank].insert(pc.contributions[c.rank].begin(), 1);  // marker byte
    if (++pc.count < cfg.world_size) return;
    std::vector<uint8_t> result;
    if (op == CollectiveOp::kAllReduceSum) {
      size_t n = pc.size / 8;
      std::vector<double> sum(n);
      for (int r = 0; r < cfg.world_size; ++r) {  // rank order: the same bits everywhere
        for (size_t i = 0; i < n; ++i) {
          double v;
          std::memcpy(&v, pc.contributions[r].data() + 1 + 8 * i, 8);
          sum[i] = r == 0 ? v : sum[i] + v;
        }
      }
      result.resize(pc.size);
      if (pc.size > 0) std::memcpy(result.data(), sum.data(), pc.size);
    } else if (op == CollectiveOp::kBroadcast) {
      if (root < 0 || root >= cfg.world_size) {
        fail(-1, ErrorKind::kUsage, FailureCause::kOther,
             fmt::format("broadcast from root {}, outside 0..{}", root, cfg.world_size - 1));
        return;
      }
      result.assign(pc.contributions[root].begin() + 1, pc.contributions[root].end());
    }
    ByteWriter w;
    w.u64(seq).bytes(result);
    auto frame = wire::encode_frame(MsgType::kResult, w.buffer());
    collectives.erase(it);
    for (int r = 0; r < cfg.world_size; ++r)
      if (rank_state[r] == RankState::kJoined) send(*by_rank[r], frame);
  }

  void on_frame(Conn& c, wire::Frame& f) {
    c.last_heard = Clock::now();
    if (c.rank < 0) {
      if (f.type != MsgType::kHello) {
        c.closing = true;
        c.close_reason = "spoke before saying hello";
        return;
      }
      on_hello(c, f.payload);
      return;
    }
    switch (f.type) {
      case MsgType::kHeartbeat:
        return;
      case MsgType::kCollective:
        on_collective(c, f.payload);
        return;
      case MsgType::kAbort: {
        ByteReader rd(f.payload);
        const std::string reason = printable(rd.str());
        fail(c.rank, ErrorKind::kPeerFailed, FailureCause::kAborted,
             fmt::format("{} aborted: {}", who(c.rank), reason));
        return;
      }
      case MsgType::kRosterQuery:
        send(c, roster());
        return;
      case MsgType::kBye:
        rank_state[c.rank] = RankState::kDeparted;
        CONVEYOR_LOG_DEBUG("rendezvous: rank {} said goodbye", c.rank);
        // Read: the rank may close now. (A close with unread bytes in its socket, heartbeats
        // say, resets the connection, and a reset discards what this side had not yet read.)
        send(c, wire::encode_frame(MsgType::kByeAck, {}));
        cv.notify_all();
        return;
      default:
        c.closing = true;
        c.close_reason =
            fmt::format("sent an unexpected message (type {})", static_cast<int>(f.type));
    }
  }

  // The ranks that have joined so far (kRoster), for a rank that is about to give up.
  std::vector<uint8_t> roster() const {
    ByteWriter w;
    int count = 0;
    for (auto st : rank_state) count += st != RankState::kAbsent;
    w.i32(cfg.world_size).i32(count);
    for (int r = 0; r < cfg.world_size; ++r)
      if (rank_state[r] != RankState::kAbsent) w.i32(r).str(hosts[r]).i32(pids[r]);
    return wire::encode_frame(MsgType::kRoster, w.buffer());
  }

  // Reads what `c` has sent and acts on every whole frame in it.
  void read_from(Conn& c, std::vector<uint8_t>& buf) {
    while (!c.closing) {
      long n = read_some(c.fd.get(), buf.data(), buf.size());
      if (n == -1) break;
      if (n <= 0) {
        c.closing = true;
        if (c.close_reason.empty()) c.close_reason = "closed";
        break;
      }
      c.decoder.feed(buf.data(), static_cast<size_t>(n));
      try {
        while (!c.closing) {
          auto f = c.decoder.next(c.rank < 0 ? wire::kMaxHelloPayload : wire::kMaxPayload);
          if (!f) break;
          on_frame(c, *f);
        }
      } catch (const Error& e) {
        c.closing = true;
        c.close_reason = "sent a malformed message (" + e.message() + ")";
      }
    }
  }

  // Closes the longest-waiting connection that has not said hello, to make room for a new
  // one. A rank says hello the moment it connects, so the oldest silent one is the least
  // likely to be a rank; a stranger who keeps opening connections pushes out only its own.
  void evict_oldest_pre_auth() {
    while (!pre_auth.empty()) {
      Conn* c = pre_auth.front();
      pre_auth.pop_front();
      if (c->closing || c->rank >= 0) continue;
      c->closing = true;
      c->close_reason = fmt::format(
          "had not said hello when a newer connection needed its place (at most {} may wait "
          "for their hello)",
          kMaxPreAuthConnections);
      c->fd.reset();  // its descriptor is what the newcomer needs
      return;
    }
  }

  // Drops a connection; an admitted rank that was still working is declared dead.
  void drop(Conn& c) {
    if (c.rank >= 0 && rank_state[c.rank] == RankState::kJoined) {
      if (c.close_cause == FailureCause::kSilent) {
        fail(c.rank, ErrorKind::kPeerFailed, FailureCause::kSilent,
             fmt::format("{} went silent: no heartbeat for {:.1f} s (the process is hung or "
                         "stopped, or its host is unreachable)",
                         who(c.rank), cfg.heartbeat_timeout_s));
      } else {
        fail(c.rank, ErrorKind::kPeerFailed, FailureCause::kDied,
             fmt::format("{} died: its connection to the rendezvous service {} (the process "
                         "exited, crashed or was killed)",
                         who(c.rank), c.close_reason.empty() ? "closed" : c.close_reason));
      }
    } else if (c.rank < 0 && !c.close_reason.empty()) {
      warn_refused("dropped a connection that {}", c.close_reason);
    }
    if (c.rank >= 0) by_rank[c.rank] = nullptr;
  }
};

RendezvousServer::RendezvousServer(int port, ServiceConfig config) : state_(new State) {
  state_->cfg = std::move(config);
  state_->listener = listen_tcp(state_->cfg.listen_host, port);
  state_->by_rank.assign(state_->cfg.world_size, nullptr);
  state_->rank_state.assign(state_->cfg.world_size, RankState::kAbsent);
  state_->addresses.resize(state_->cfg.world_size);
  state_->hosts.resize(state_->cfg.world_size);
  state_->pids.assign(state_->cfg.world_size, 0);
  // The service thread logs: the logger registry (created on first use, inside spdlog) must
  // exist before it starts, not be created by this rank's thread while the service logs.
  spdlog::default_logger_raw();
  thread_ = std::thread([this] { serve(); });
}

RendezvousServer::~RendezvousServer() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void RendezvousServer::fail_job(int rank, ErrorKind kind, FailureCause cause,
                                const std::string& reason) {
  std::lock_guard lock(state_->mu);
  state_->fail(rank, kind, cause, reason);
}

bool RendezvousServer::wait_all_departed(Deadline deadline) {
  std::unique_lock lock(state_->mu);
  auto all_gone = [&] {
    if (state_->failed) return true;
    for (auto s : state_->rank_state)
      if (s == RankState::kJoined || s == RankState::kAbsent) return false;
    return true;
  };
  state_->cv.wait_until(lock, deadline.at(), all_gone);
  return all_gone() && !state_->failed;
}

void RendezvousServer::serve() {
  State& s = *state_;
  const auto hb_interval =
      std::chrono::duration<double>(std::min(0.25, s.cfg.heartbeat_timeout_s / 4));
  const auto hb_timeout = std::chrono::duration<double>(s.cfg.heartbeat_timeout_s);
  const auto hello_timeout = std::chrono::duration<double>(s.cfg.hello_timeout_s);
  std::vector<pollfd> fds;
  std::vector<uint8_t> buf(64 * 1024);
  auto accept_paused_until = Clock::time_point::min();
  while (!stop_) {
    fds.clear();
    {
      std::lock_guard lock(s.mu);
      // Index 0 stays the listener, also while accepting pauses.
      const bool paused = Clock::now() < accept_paused_until;
      fds.push_back({s.listener.get(), static_cast<short>(paused ? 0 : POLLIN), 0});
      for (auto& c : s.conns) fds.push_back({c->fd.get(), POLLIN, 0});
    }
    // The connection list only changes on this thread, so fds[i+1] stays conns[i].
    ::poll(fds.data(), fds.size(), 50);
    std::lock_guard lock(s.mu);
    auto now = Clock::now();
    for (size_t i = 1; i < fds.size(); ++i) {
      Conn& c = *s.conns[i - 1];
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)) || c.closing) continue;
      s.read_from(c, buf);
    }
    // Accepted after every known connection was read, and at most half the bound per pass:
    // a connection accepted in one pass is read in the next before anything can push it out.
    if (fds[0].revents & POLLIN) {
      std::erase_if(s.pre_auth, [](const Conn* c) { return c->closing || c->rank >= 0; });
      for (size_t k = 0; k < kMaxPreAuthConnections / 2; ++k) {
        if (s.pre_auth.size() >= kMaxPreAuthConnections) s.evict_oldest_pre_auth();
        sockaddr_in peer{};
        socklen_t peer_len = sizeof peer;
        int fd = ::accept4(s.listener.get(), reinterpret_cast<sockaddr*>(&peer), &peer_len,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
          if (errno == EINTR || errno == ECONNABORTED) continue;
          if (errno == EMFILE || errno == ENFILE) {
            // Out of descriptors (something else in rank 0 holds them): a waiting stranger
            // gives its place, else accepting pauses briefly rather than spinning on poll.
            if (!s.pre_auth.empty()) {
              s.evict_oldest_pre_auth();
              continue;
            }
            s.warn_refused("cannot accept a connection: {}; retrying in {} ms",
                           std::strerror(errno), kAcceptPauseMs);
            accept_paused_until = now + std::chrono::milliseconds(kAcceptPauseMs);
          }
          break;
        }
        auto c = std::make_unique<Conn>();
        c->fd = Fd(fd);
        // Host names can repeat (containers, namespaces, copied images); the address the
        // connection came from tells hosts apart in every message about the rank.
        char ip[INET_ADDRSTRLEN] = {};
        if (peer.sin_family == AF_INET && (ntohl(peer.sin_addr.s_addr) >> 24) != 127 &&
            inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip))
          c->peer_ip = ip;
        Conn& added = *c;
        s.conns.push_back(std::move(c));
        // A rank sends its hello as soon as it is connected, so it is usually here already.
        s.read_from(added, buf);
        if (added.rank < 0 && !added.closing) s.pre_auth.push_back(&added);
      }
    }
    // Timers: silent newcomers, silent ranks, our own heartbeat.
    for (auto& c : s.conns) {
      if (c->closing) continue;
      if (c->rank < 0 && now - c->opened > hello_timeout) {
        c->closing = true;
        c->close_reason = "said nothing for too long";
      } else if (c->rank >= 0 && s.rank_state[c->rank] == RankState::kJoined &&
                 now - c->last_heard > hb_timeout &&
                 std::chrono::duration<double>(now - c->last_heard).count() >
                     silence_limit_s(c->fd.get(), s.cfg.heartbeat_timeout_s)) {
        c->closing = true;
        c->close_cause = FailureCause::kSilent;
      }
    }
    if (now - s.last_heartbeat_sent >= hb_interval) {
      s.last_heartbeat_sent = now;
      auto frame = wire::encode_frame(MsgType::kHeartbeat, {});
      for (auto& c : s.conns)
        if (c->rank >= 0 && s.rank_state[c->rank] == RankState::kJoined) s.send(*c, frame);
    }
    for (auto& c : s.conns)
      if (c->closing) s.drop(*c);
    std::erase_if(s.pre_auth, [](const Conn* c) { return c->closing || c->rank >= 0; });
    std::erase_if(s.conns, [](const std::unique_ptr<Conn>& c) { return c->closing; });
  }
}

}  // namespace conveyor::transport
