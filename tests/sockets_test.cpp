// Unit tests of common/src/sockets.cpp: the options every role's sockets get.

#include <topicflow/sockets.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

namespace topicflow {
namespace {

using namespace std::chrono_literals;

// A busy worker stops reading its task socket for as long as its handlers take: its receive
// queue fills and libzmq stops reading the connection. That connection must survive the pause
// and lose nothing. (With ZMTP heartbeats on, libzmq 4.3.4 dropped it after the heartbeat
// timeout, losing the queued tasks, and the reconnect aborted the process: "Assertion failed:
// _input_stopped".)
TEST(Sockets, AConsumerThatStopsReadingKeepsItsConnectionAndLosesNothing) {
  zmq::context_t ctx;
  SocketOptions small;
  small.sndhwm = 1;
  small.rcvhwm = 1;
  auto push = make_socket(ctx, zmq::socket_type::push, small);
  push.bind("tcp://127.0.0.1:*");
  const auto endpoint = push.get(zmq::sockopt::last_endpoint);
  auto pull = make_socket(ctx, zmq::socket_type::pull, small);
  pull.connect(endpoint);

  constexpr int kMessages = 200;
  std::thread sender([&] {
    for (int i = 0; i < kMessages; ++i) {
      const auto body = std::to_string(i) + std::string(4096, 'x');  // fills socket buffers
      // (blocks at the high-water mark while the consumer pauses)
      (void)push.send(zmq::buffer(body), zmq::send_flags::none);
    }
  });
  zmq::message_t msg;
  ASSERT_TRUE(pull.recv(msg));
  std::this_thread::sleep_for(5s);  // longer than any heartbeat timeout the sockets had
  pull.set(zmq::sockopt::rcvtimeo, 5000);
  int received = 1;
  while (received < kMessages && pull.recv(msg)) ++received;
  sender.join();
  EXPECT_EQ(received, kMessages) << "messages queued for a paused consumer were lost";
}

TEST(Sockets, TcpKeepaliveIsOnAndBounded) {
  zmq::context_t ctx;
  auto s = make_socket(ctx, zmq::socket_type::pull, SocketOptions{});
  EXPECT_EQ(s.get(zmq::sockopt::tcp_keepalive), 1);
  const SocketOptions o;
  EXPECT_LE(o.keepalive_idle_s + o.keepalive_interval_s * o.keepalive_count, 15)
      << "a vanished peer must be noticed within seconds";
  EXPECT_EQ(s.get(zmq::sockopt::heartbeat_ivl), 0) << "ZMTP heartbeats: see make_socket";
}

}  // namespace
}  // namespace topicflow
