#include <topicflow/sockets.hpp>

#include <algorithm>
#include <cerrno>
#include <stdexcept>

namespace topicflow {

zmq::socket_t make_socket(zmq::context_t& ctx, zmq::socket_type type, const SocketOptions& o) {
  zmq::socket_t socket(ctx, type);
  socket.set(zmq::sockopt::linger, o.linger_ms);
  socket.set(zmq::sockopt::sndhwm, o.sndhwm);
  socket.set(zmq::sockopt::rcvhwm, o.rcvhwm);
  socket.set(zmq::sockopt::maxmsgsize, o.max_msg_bytes);
  return socket;
}

void bind_socket(zmq::socket_t& socket, std::string_view flag, const std::string& endpoint) {
  try {
    socket.bind(endpoint);
  } catch (const zmq::error_t& e) {
    throw std::runtime_error("cannot bind " + std::string(flag) + " " + endpoint + ": " + e.what());
  }
}

void connect_socket(zmq::socket_t& socket, std::string_view flag, const std::string& endpoint) {
  try {
    socket.connect(endpoint);
  } catch (const zmq::error_t& e) {
    throw std::runtime_error("cannot connect " + std::string(flag) + " " + endpoint + ": " + e.what());
  }
}

int poll_items(zmq::pollitem_t* items, std::size_t count, std::int64_t timeout_ms) {
  try {
    return zmq::poll(items, count, std::chrono::milliseconds(std::max<std::int64_t>(timeout_ms, 0)));
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
