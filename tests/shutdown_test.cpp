// Unit tests of the stop signal (common/src/shutdown.cpp): the self-pipe becomes readable when
// triggered, works in a zmq poll set, and SIGINT/SIGTERM route to it. Signals are sent in death
// tests (a forked child each), because the handler _exit(130)s on a second signal and the
// process-wide handler state must not leak between tests.

#include <topicflow/shutdown.hpp>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>
#include <chrono>
#include <csignal>
#include <thread>
#include <vector>

using topicflow::install_signal_handlers;
using topicflow::StopSignal;

namespace {

bool readable(int fd, int timeout_ms = 0) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN) != 0;
}

}  // namespace

TEST(StopSignal, StartsUntriggeredAndQuiet) {
  StopSignal stop;
  EXPECT_FALSE(stop.triggered());
  EXPECT_GE(stop.fd(), 0) << "a valid fd";
  EXPECT_FALSE(readable(stop.fd())) << "nothing to read before trigger()";
}

TEST(StopSignal, TriggerMakesTheFdReadable) {
  StopSignal stop;
  stop.trigger();
  EXPECT_TRUE(stop.triggered());
  EXPECT_TRUE(readable(stop.fd())) << "the fd is readable after trigger()";
  EXPECT_TRUE(readable(stop.fd())) << "and stays readable (level-triggered, nobody drains it)";
}

TEST(StopSignal, ManyTriggersNeverBlock) {
  // The pipe is non-blocking: more triggers than the pipe buffer holds must not hang.
  StopSignal stop;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 200000; ++i) stop.trigger();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  EXPECT_TRUE(stop.triggered());
  EXPECT_LT(ms, 10000) << "200000 triggers took " << ms << " ms";
}

TEST(StopSignal, InstancesAreIndependent) {
  StopSignal a;
  StopSignal b;
  a.trigger();
  EXPECT_TRUE(a.triggered());
  EXPECT_FALSE(b.triggered()) << "triggering one stop signal leaves another alone";
  EXPECT_FALSE(readable(b.fd()));
}

TEST(StopSignal, FdIsCloseOnExecAndNonBlocking) {
  StopSignal stop;
  EXPECT_NE(::fcntl(stop.fd(), F_GETFD) & FD_CLOEXEC, 0)
      << "children (exec handlers) must not inherit it";
  EXPECT_NE(::fcntl(stop.fd(), F_GETFL) & O_NONBLOCK, 0);
}

TEST(StopSignal, WakesAZmqPollFromAnotherThread) {
  StopSignal stop;
  zmq::context_t ctx;
  zmq::socket_t socket(ctx, zmq::socket_type::pull);
  socket.set(zmq::sockopt::linger, 0);
  socket.bind("inproc://stop-signal-test");
  std::thread trigger([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    stop.trigger();
  });
  std::vector<zmq::pollitem_t> items = {{socket.handle(), 0, ZMQ_POLLIN, 0},
                                        {nullptr, stop.fd(), ZMQ_POLLIN, 0}};
  const auto start = std::chrono::steady_clock::now();
  const auto ready = zmq::poll(items, std::chrono::milliseconds(10000));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  trigger.join();
  EXPECT_EQ(ready, 1) << "exactly the stop fd is ready, after " << ms << " ms";
  EXPECT_NE(items[1].revents & ZMQ_POLLIN, 0) << "the stop fd woke the poll, after " << ms << " ms";
  EXPECT_EQ(items[0].revents & ZMQ_POLLIN, 0) << "the socket had nothing";
  EXPECT_LT(ms, 5000) << "woken promptly";
  EXPECT_TRUE(stop.triggered());
}

using StopSignalDeathTest = testing::Test;

TEST(StopSignalDeathTest, SigtermTriggersTheStopSignal) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        StopSignal stop;
        install_signal_handlers(stop);
        std::raise(SIGTERM);
        _exit(stop.triggered() && readable(stop.fd()) ? 0 : 1);
      },
      testing::ExitedWithCode(0), "")
      << "one SIGTERM triggers the stop signal and the process keeps running";
}

TEST(StopSignalDeathTest, SigintTriggersTheStopSignal) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        StopSignal stop;
        install_signal_handlers(stop);
        std::raise(SIGINT);
        _exit(stop.triggered() ? 0 : 1);
      },
      testing::ExitedWithCode(0), "")
      << "one SIGINT triggers the stop signal";
}

TEST(StopSignalDeathTest, SecondSignalExits130) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        StopSignal stop;
        install_signal_handlers(stop);
        std::raise(SIGTERM);
        std::raise(SIGINT);
        _exit(0);  // not reached: the second signal exits at once
      },
      testing::ExitedWithCode(130), "")
      << "a second signal is the impatient operator: exit 130 at once";
}

TEST(StopSignalDeathTest, SigpipeIsIgnored) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        StopSignal stop;
        install_signal_handlers(stop);
        std::raise(SIGPIPE);
        struct sigaction current {};
        ::sigaction(SIGPIPE, nullptr, &current);
        _exit(current.sa_handler == SIG_IGN && !stop.triggered() ? 0 : 1);
      },
      testing::ExitedWithCode(0), "")
      << "SIGPIPE neither kills the process nor stops it";
}

TEST(StopSignalDeathTest, SignalAfterTheStopSignalIsGoneIsHarmless) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        {
          StopSignal stop;
          install_signal_handlers(stop);
        }
        std::raise(SIGTERM);  // the handler must not touch the destroyed StopSignal
        _exit(0);
      },
      testing::ExitedWithCode(0), "")
      << "a signal after the StopSignal was destroyed neither crashes nor exits";
}
