#pragma once
// Small helpers around cppzmq so every role creates, binds and connects sockets the same way:
// explicit linger, explicit HWMs, a max message size on everything that binds, and bind/connect
// failures turned into one readable line ("cannot bind --sink tcp://127.0.0.1:5559: Address
// already in use"). With CURVE on (curve.hpp) the same two calls make a socket a CURVE server
// (bind_socket with the process's CurveServer) or client (connect_socket with its Security):
// every role secures its sockets through this one path.

#include <topicflow/curve.hpp>

#include <zmq.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace topicflow {

struct SocketOptions {
  int sndhwm = 1000;
  int rcvhwm = 1000;
  int linger_ms = 0;
  std::int64_t max_msg_bytes = 16 << 20;  // ZMQ_MAXMSGSIZE: larger frames drop the connection
  // TCP keepalive (tcp:// only): a peer that vanished without closing its connection is
  // dropped after idle + interval x count seconds (0: the kernel's defaults, i.e. hours).
  int keepalive_idle_s = 5;
  int keepalive_interval_s = 2;
  int keepalive_count = 3;
};

[[nodiscard]] zmq::socket_t make_socket(zmq::context_t& ctx, zmq::socket_type type,
                                        const SocketOptions& options);
// Binds. With `curve`, the socket is a CURVE server admitting the clients `curve` authorizes;
// without, binding a TCP address other than loopback logs a warning (anyone who can reach it may
// submit and take tasks).
void bind_socket(zmq::socket_t& socket, std::string_view flag, const std::string& endpoint,
                 const CurveServer* curve = nullptr);
// Connects. With CURVE on in `security`, the socket is a CURVE client with this process's key
// pair, expecting the server key that belongs to `flag` (Security::server_key_for).
void connect_socket(zmq::socket_t& socket, std::string_view flag, const std::string& endpoint,
                    const Security& security = {});

// True for ipc://, inproc:// and TCP on a loopback address (127.x.x.x, ::1, localhost, lo).
[[nodiscard]] bool is_local_endpoint(std::string_view endpoint);

// zmq::poll that treats EINTR (a signal arrived: the stop pipe will say which) as "nothing
// ready" instead of throwing; returns the number of ready items.
int poll_items(zmq::pollitem_t* items, std::size_t count, std::int64_t timeout_ms);

// Receives one message without blocking; nothing when none is queued. ETERM is rethrown.
[[nodiscard]] std::optional<zmq::message_t> try_recv(zmq::socket_t& socket);

// Sends, retrying EAGAIN while `keep_trying()` says so (a blocked peer); false if gave up.
template <typename Pred>
bool send_blocking(zmq::socket_t& socket, zmq::message_t& msg, zmq::send_flags flags,
                   Pred keep_trying, int poll_ms = 50) {
  for (;;) {
    if (socket.send(msg, flags | zmq::send_flags::dontwait)) return true;
    if (!keep_trying()) return false;
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLOUT, 0};
    poll_items(&item, 1, poll_ms);
  }
}

}  // namespace topicflow
