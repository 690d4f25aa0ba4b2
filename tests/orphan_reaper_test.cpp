// OrphanReaper: the worker as a child subreaper that reaps what handlers' commands leave
// behind, and never takes an exit status that a handler (or other code here) waits for.
// Each test runs in its own process (gtest_discover_tests), so the subreaper flag set by one
// stays in it.
#include <topicflow/handler.hpp>
#include <topicflow/orphan_reaper.hpp>
#include <topicflow/process.hpp>

#include "support/proc.hpp"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <sys/prctl.h>
#include <unistd.h>
#include <csignal>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace topicflow {
namespace {

using namespace std::chrono_literals;
using testing::proc_stat;

Outcome run(Handler& h) {
  const CancelToken token(10000);
  return h.handle(TaskView{"job", "key", "", 1}, token);
}

std::vector<pid_t> pids_in(const std::string& text) {
  std::istringstream in(text);
  std::vector<pid_t> out;
  for (pid_t pid = 0; in >> pid;) out.push_back(pid);
  return out;
}

TEST(OrphanReaper, ReapsWhatAnExecHandlersCommandLeavesBehind) {
  (void)spdlog::default_logger_raw();
  const OrphanReaper reaper(50ms);
  int flag = 0;
  ASSERT_EQ(::prctl(PR_GET_CHILD_SUBREAPER, &flag, 0, 0, 0), 0);
  EXPECT_EQ(flag, 1) << "the process is a child subreaper";
  // One orphan in the command's process group (the handler SIGKILLs the group after the shell
  // exits: a zombie), one that left the group with setsid (still running).
  auto handler =
      make_handler("exec:sleep 30 & a=$!; setsid sleep 30 </dev/null >/dev/null 2>&1 & b=$!; " +
                   testing::wait_until_out_of_group("b") + "echo $a $b");
  const auto outcome = run(*handler);
  ASSERT_TRUE(outcome.ok()) << outcome.data;
  const auto pids = pids_in(outcome.data);
  ASSERT_EQ(pids.size(), 2U) << outcome.data;
  const pid_t in_group = pids[0];
  const pid_t escaped = pids[1];

  const auto stat = proc_stat(escaped);
  ASSERT_TRUE(stat.has_value()) << "the escaped orphan runs on";
  EXPECT_EQ(stat->parent, ::getpid()) << "an orphan comes to the subreaper, not to PID 1";
  EXPECT_TRUE(testing::reaped_within(in_group, 10s))
      << "the orphan killed with its group is reaped, not left a zombie: "
      << (proc_stat(in_group) ? std::string(1, proc_stat(in_group)->state) : "gone");
  ::kill(escaped, SIGKILL);
  EXPECT_TRUE(testing::reaped_within(escaped, 10s))
      << "the escaped orphan is reaped once it dies: "
      << (proc_stat(escaped) ? std::string(1, proc_stat(escaped)->state) : "gone");
  // (the count goes up once its sweep is over, just after the pid left /proc)
  for (int i = 0; i < 500 && reaper.reaped() < 2; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(reaper.reaped(), 2U);
}

TEST(OrphanReaper, NeverTakesAnExitStatusSomeoneHereWaitsFor) {
  (void)spdlog::default_logger_raw();
  const OrphanReaper reaper(1ms);  // sweeping all the time
  // Handlers' own children: every exit status arrives.
  auto handler = make_handler("exec:exit 3");
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  std::string first_wrong;
  std::mutex mutex;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        const auto o = run(*handler);
        if (o.data.rfind("exit status 3", 0) != 0) {
          if (wrong++ == 0) {
            const std::scoped_lock lock(mutex);
            first_wrong = o.data;
          }
        }
      }
    });
  }
  // A child forked the ordinary way by other code here (in this process's group), that exits
  // while the reaper sweeps: its parent gets the status.
  ChildProcess child({"/bin/sh", "-c", "exit 4"});
  std::this_thread::sleep_for(200ms);
  const auto status = child.wait_for(5s);
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0) << "a handler lost its child's status: " << first_wrong;
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->code, 4) << status->describe();
  EXPECT_EQ(reaper.reaped(), 0U);
}

}  // namespace
}  // namespace topicflow
