#include <topicflow/sockets.hpp>

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace topicflow {

zmq::socket_t make_socket(zmq::context_t& ctx, zmq::socket_type type, const SocketOptions& o) {
  zmq::socket_t socket(ctx, type);
  socket.set(zmq::sockopt::linger, o.linger_ms);
  socket.set(zmq::sockopt::sndhwm, o.sndhwm);
  socket.set(zmq::sockopt::rcvhwm, o.rcvhwm);
  socket.set(zmq::sockopt::maxmsgsize, o.max_msg_bytes);
  // A peer that vanished without closing its connection (a host that died, a cable pulled: no
  // FIN) is noticed by TCP keepalive within idle + interval x count seconds, so a broker stops
  // queueing tasks for a worker that cannot take them. Not ZMTP heartbeats (ZMQ_HEARTBEAT_*):
  // libzmq 4.3.4 cannot read a PING on a connection whose input is stopped by a full receive
  // queue, which is every busy worker's task socket, so the heartbeat timeout drops healthy
  // connections, and the reconnect then aborts the process ("Assertion failed: _input_stopped
  // (src/stream_engine_base.cpp:417)", libzmq issues #3937, #4767). The kernel answers
  // keepalive probes whatever the application reads.
  if (o.keepalive_idle_s > 0) {
    socket.set(zmq::sockopt::tcp_keepalive, 1);
    socket.set(zmq::sockopt::tcp_keepalive_idle, o.keepalive_idle_s);
    socket.set(zmq::sockopt::tcp_keepalive_intvl, o.keepalive_interval_s);
    socket.set(zmq::sockopt::tcp_keepalive_cnt, o.keepalive_count);
  }
  return socket;
}

bool is_local_endpoint(std::string_view endpoint) {
  if (!endpoint.starts_with("tcp://")) return true;
  auto host = endpoint.substr(6);
  host = host.substr(0, host.rfind(':'));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return host.starts_with("127.") || host == "::1" || host == "localhost" || host == "lo";
}

namespace {

// ZeroMQ unlinks an existing ipc:// socket file before it binds, so a second sink or broker
// started on the same path would silently take the traffic of the one already running there.
// Refuse, as tcp:// does, when a process still accepts connections on the path (a stale file
// left by a killed process refuses them and is taken over as before).
void refuse_live_ipc_endpoint(std::string_view flag, const std::string& endpoint) {
  if (!endpoint.starts_with("ipc://")) return;
  const auto path = std::string_view(endpoint).substr(6);
  sockaddr_un addr{};
  // "*" is a wildcard and "@name" the abstract namespace (no file to take over).
  if (path.empty() || path == "*" || path.front() == '@' || path.size() >= sizeof(addr.sun_path))
    return;
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  const bool live = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  if (live) {
    throw std::runtime_error("cannot bind " + std::string(flag) + " " + endpoint +
                             ": Address already in use (another process is listening on it)");
  }
}

}  // namespace

void bind_socket(zmq::socket_t& socket, std::string_view flag, const std::string& endpoint,
                 const CurveServer* curve) {
  if (curve != nullptr) curve->apply(socket);
  refuse_live_ipc_endpoint(flag, endpoint);
  try {
    socket.bind(endpoint);
  } catch (const zmq::error_t& e) {
    throw std::runtime_error("cannot bind " + std::string(flag) + " " + endpoint + ": " + e.what());
  }
  if (curve == nullptr && !is_local_endpoint(endpoint)) {
    spdlog::warn(
        "{} {} is reachable from other hosts without CURVE: anyone who can connect to it "
        "can submit or take tasks (fine on a private network; see --curve-secret-key)",
        flag, endpoint);
  }
}

void connect_socket(zmq::socket_t& socket, std::string_view flag, const std::string& endpoint,
                    const Security& security) {
  if (security.enabled()) {
    auto binary = [](const std::string& z85) {
      std::array<std::uint8_t, 32> bytes{};
      if (zmq_z85_decode(bytes.data(), z85.c_str()) == nullptr)
        throw std::logic_error("bad CURVE key");
      return bytes;
    };
    const auto server = binary(security.server_key_for(flag));
    const auto pub = binary(security.keys->public_key);
    const auto secret = binary(security.keys->secret_key);
    socket.set(zmq::sockopt::curve_serverkey, zmq::const_buffer(server.data(), server.size()));
    socket.set(zmq::sockopt::curve_publickey, zmq::const_buffer(pub.data(), pub.size()));
    socket.set(zmq::sockopt::curve_secretkey, zmq::const_buffer(secret.data(), secret.size()));
  }
  // A peer not up yet (every `topicflow run` child starts at once) is retried after 10 ms, then
  // backing off to libzmq's usual 100 ms: never slower than its default, much faster at start.
  socket.set(zmq::sockopt::reconnect_ivl, 10);
  socket.set(zmq::sockopt::reconnect_ivl_max, 100);
  try {
    socket.connect(endpoint);
  } catch (const zmq::error_t& e) {
    throw std::runtime_error("cannot connect " + std::string(flag) + " " + endpoint + ": " +
                             e.what());
  }
}

int poll_items(zmq::pollitem_t* items, std::size_t count, std::int64_t timeout_ms) {
  try {
    return zmq::poll(items, count,
                     std::chrono::milliseconds(std::max<std::int64_t>(timeout_ms, 0)));
  } catch (const zmq::error_t& e) {
    if (e.num() != EINTR) throw;
    for (std::size_t i = 0; i < count; ++i) items[i].revents = 0;
    return 0;
  }
}

std::optional<zmq::message_t> try_recv(zmq::socket_t& socket) {
  zmq::message_t msg;
  try {
    if (!socket.recv(msg, zmq::recv_flags::dontwait)) return std::nullopt;
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return std::nullopt;
    throw;
  }
  return msg;
}

}  // namespace topicflow
