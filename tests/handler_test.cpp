// Handler SDK and built-in handlers: spec parsing, sleep/fail behaviour, exec:COMMAND.
#include <topicflow/clock.hpp>
#include <topicflow/handler.hpp>

#include <gtest/gtest.h>

#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace tf = topicflow;
using tf::Outcome;

namespace {

static_assert(std::has_virtual_destructor_v<tf::Handler>);
static_assert(!std::is_copy_constructible_v<tf::CancelToken>);

Outcome run(tf::Handler& h, std::string_view payload = "", std::int64_t timeout_ms = 0,
            std::string_view key = "k", std::uint32_t attempt = 1) {
  tf::CancelToken token(timeout_ms);
  return h.handle(tf::TaskView{"job", key, payload, attempt}, token);
}

std::string describe(const Outcome& o) {
  return std::string(o.ok() ? "completed" : "failed") + (o.retryable ? " retryable" : "") +
         " data='" + o.data.substr(0, 200) + "'";
}

std::size_t open_fds() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

// Live (non-zombie) processes whose process group is `pgid`.
int live_in_group(pid_t pgid) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const auto name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(e.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    int ppid = 0;
    int pgrp = 0;
    if (std::sscanf(line.c_str() + close + 1, " %c %d %d", &state, &ppid, &pgrp) != 3) continue;
    if (pgrp == pgid && state != 'Z' && state != 'X') ++n;
  }
  return n;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid())))
      .string();
}

}  // namespace

// ---- spec parsing ---------------------------------------------------------------------------

TEST(HandlerSpec, AcceptsGoodSpecs) {
  for (const char* spec : {"noop", "sleep:1-2", "sleep:5", "sleep:0-0", "fail:0.5", "fail:0",
                           "fail:1", "sleep:20-100,fail:0.1", "fail:0.1,sleep:1-3", "noop,fail:0.2",
                           "exec:cat", "exec:printf '%s' a,b"}) {
    std::unique_ptr<tf::Handler> h;
    ASSERT_NO_THROW(h = tf::make_handler(spec)) << "spec '" << spec << "'";
    ASSERT_NE(h, nullptr) << "spec '" << spec << "'";
    EXPECT_EQ(h->describe(), spec) << "describe() should echo the spec";
  }
}

TEST(HandlerSpec, RejectsBadSpecsWithOneLineReason) {
  for (const char* spec : {"",
                           "bogus",
                           "sleep",
                           "sleep:",
                           "sleep:a-b",
                           "sleep:5-1",
                           "sleep:-1",
                           "sleep:1-",
                           "sleep:1-2-3",
                           "fail:",
                           "fail:x",
                           "fail:1.5",
                           "fail:-0.1",
                           "fail:nan",
                           "noop,",
                           ",noop",
                           "noop,,fail:0.1",
                           "sleep:1-2,sleep:3-4",
                           "fail:0.1,fail:0.2",
                           "exec:",
                           "exec:   ",
                           "noop,exec:ls",
                           "NOOP"}) {
    try {
      (void)tf::make_handler(spec);
      ADD_FAILURE() << "spec '" << spec << "' was accepted";
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      EXPECT_EQ(what.find('\n'), std::string::npos)
          << "spec '" << spec << "': multi-line reason: " << what;
      EXPECT_NE(what.find("--handler"), std::string::npos)
          << "spec '" << spec << "': reason: " << what;
    }
  }
}

// ---- noop / sleep / fail --------------------------------------------------------------------

TEST(SimulatedHandler, NoopCompletesAtOnce) {
  auto h = tf::make_handler("noop");
  const auto t0 = tf::steady_ms();
  const auto o = run(*h, "payload");
  EXPECT_TRUE(o.ok()) << describe(o);
  EXPECT_TRUE(o.data.empty()) << describe(o);
  EXPECT_LT(tf::steady_ms() - t0, 50) << "noop should not wait";
}

TEST(SimulatedHandler, SleepStaysWithinBounds) {
  auto h = tf::make_handler("sleep:30-60");
  for (int i = 0; i < 8; ++i) {
    const auto t0 = tf::steady_ms();
    const auto o = run(*h);
    const auto ms = tf::steady_ms() - t0;
    EXPECT_TRUE(o.ok()) << "run " << i << ": " << describe(o);
    EXPECT_GE(ms, 30) << "run " << i;
    // (an upper bound that catches a wrong unit, not a slow machine: ctest -j2 on 2 loaded
    // cores has been seen to wake a thread 40+ ms late)
    EXPECT_LE(ms, 60 + 500) << "run " << i;
  }
}

TEST(SimulatedHandler, SleepWakesEarlyOnCancel) {
  auto h = tf::make_handler("sleep:10000");
  tf::CancelToken token;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    token.cancel();
  });
  const auto t0 = tf::steady_ms();
  const auto o = h->handle(tf::TaskView{"j", "k", "", 1}, token);
  const auto ms = tf::steady_ms() - t0;
  canceller.join();
  EXPECT_FALSE(o.ok()) << describe(o);
  EXPECT_TRUE(o.retryable) << describe(o);
  EXPECT_EQ(o.data, "cancelled") << describe(o);
  EXPECT_LT(ms, 1000) << "a cancelled sleep must return early, took " << ms << " ms";
}

TEST(SimulatedHandler, SleepHonoursTheDeadline) {
  auto h = tf::make_handler("sleep:5000");
  const auto t0 = tf::steady_ms();
  const auto o = run(*h, "", 60);
  const auto ms = tf::steady_ms() - t0;
  EXPECT_FALSE(o.ok()) << describe(o);
  EXPECT_TRUE(o.retryable) << describe(o);
  EXPECT_EQ(o.data, "timed out after 60 ms") << describe(o);
  EXPECT_LT(ms, 1000) << "took " << ms << " ms";
}

TEST(SimulatedHandler, FailProbabilityMatchesSpec) {
  tf::HandlerOptions options;
  options.seed = 12345;
  auto h = tf::make_handler("fail:0.3", options);
  const int n = 4000;
  int failures = 0;
  for (int i = 0; i < n; ++i) {
    const auto o = run(*h);
    if (!o.ok()) {
      ++failures;
      EXPECT_TRUE(o.retryable) << describe(o);
      EXPECT_EQ(o.data, "simulated failure (fail:0.3)") << describe(o);
    }
  }
  const double rate = static_cast<double>(failures) / n;
  // Binomial(4000, 0.3): sigma ~ 0.0072; 0.03 is about 4 sigma.
  EXPECT_NEAR(rate, 0.3, 0.03) << failures << " failures in " << n << " runs";
}

TEST(SimulatedHandler, FailExtremesAndSeedAreDeterministic) {
  auto never = tf::make_handler("fail:0");
  auto always = tf::make_handler("fail:1");
  for (int i = 0; i < 200; ++i) {
    EXPECT_TRUE(run(*never).ok()) << "fail:0 failed at run " << i;
    EXPECT_FALSE(run(*always).ok()) << "fail:1 completed at run " << i;
  }
  tf::HandlerOptions options;
  options.seed = 7;
  auto a = tf::make_handler("fail:0.5", options);
  auto b = tf::make_handler("fail:0.5", options);
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(run(*a).ok(), run(*b).ok()) << "same seed diverged at run " << i;
  }
}

TEST(SimulatedHandler, CombinedSleepAndFailIsThreadSafe) {
  auto h = tf::make_handler("sleep:0-2,fail:0.5");
  std::atomic<int> completed{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) (run(*h).ok() ? completed : failed).fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(completed + failed, 300);
  EXPECT_GT(completed.load(), 50) << "completed=" << completed << " failed=" << failed;
  EXPECT_GT(failed.load(), 50) << "completed=" << completed << " failed=" << failed;
}

// ---- exec:COMMAND ---------------------------------------------------------------------------

TEST(ExecHandler, ExitZeroCompletesWithStdoutFromStdin) {
  auto h = tf::make_handler("exec:tr a-z A-Z");
  const auto o = run(*h, "hello world");
  EXPECT_TRUE(o.ok()) << describe(o);
  EXPECT_EQ(o.data, "HELLO WORLD") << describe(o);
}

TEST(ExecHandler, PassesJobKeyAndAttemptInTheEnvironment) {
  ::setenv("TOPICFLOW_KEY", "stale-from-parent", 1);
  auto h = tf::make_handler(
      R"(exec:printf '%s|%s|%s' "$TOPICFLOW_JOB" "$TOPICFLOW_KEY" "$TOPICFLOW_ATTEMPT")");
  const auto o = run(*h, "", 0, "my key", 3);
  ::unsetenv("TOPICFLOW_KEY");
  EXPECT_TRUE(o.ok()) << describe(o);
  EXPECT_EQ(o.data, "job|my key|3") << describe(o);
}

TEST(ExecHandler, ExitSeventyFiveIsRetryable) {
  auto h = tf::make_handler("exec:echo try later >&2; exit 75");
  const auto o = run(*h);
  EXPECT_FALSE(o.ok()) << describe(o);
  EXPECT_TRUE(o.retryable) << describe(o);
  EXPECT_EQ(o.data, "exit status 75: try later") << describe(o);
}

TEST(ExecHandler, OtherExitIsPermanentWithStderrTail) {
  auto h = tf::make_handler("exec:echo partial; echo boom >&2; exit 3");
  const auto o = run(*h);
  EXPECT_FALSE(o.ok()) << describe(o);
  EXPECT_FALSE(o.retryable) << describe(o);
  EXPECT_EQ(o.data, "exit status 3: boom") << describe(o);

  // Only the last ~2 KB of a long stderr is kept, ending with the last line.
  auto chatty = tf::make_handler(
      "exec:i=0; while [ $i -lt 500 ]; do echo \"line $i of noise\" >&2; i=$((i+1)); done; exit 1");
  const auto c = run(*chatty);
  EXPECT_FALSE(c.ok()) << describe(c);
  EXPECT_LE(c.data.size(), 2048U + 32U) << "error size " << c.data.size();
  EXPECT_GE(c.data.size(), 1500U) << "error size " << c.data.size();
  EXPECT_TRUE(c.data.ends_with("line 499 of noise")) << describe(c);
  EXPECT_TRUE(c.data.starts_with("exit status 1: ")) << describe(c);
}

TEST(ExecHandler, KilledBySignalIsRetryable) {
  auto h = tf::make_handler("exec:kill -9 $$");
  const auto o = run(*h);
  EXPECT_FALSE(o.ok()) << describe(o);
  EXPECT_TRUE(o.retryable) << describe(o);
  EXPECT_TRUE(o.data.starts_with("killed by signal 9")) << describe(o);
}

TEST(ExecHandler, TimeoutKillsTheWholeProcessGroupQuickly) {
  const auto pid_file = temp_path("topicflow-exec-timeout");
  std::filesystem::remove(pid_file);
  auto h = tf::make_handler("exec:echo $$ > " + pid_file + "; sleep 30 & sleep 30; true");
  const auto t0 = tf::steady_ms();
  const auto o = run(*h, "", 300);
  const auto ms = tf::steady_ms() - t0;
  EXPECT_FALSE(o.ok()) << describe(o);
  EXPECT_TRUE(o.retryable) << describe(o);
  EXPECT_EQ(o.data, "timed out after 300 ms") << describe(o);
  EXPECT_LT(ms, 1500) << "timeout took " << ms << " ms";

  std::ifstream in(pid_file);
  pid_t pgid = 0;
  ASSERT_TRUE(in >> pgid) << "the command did not write its pid to " << pid_file;
  int live = -1;
  for (int i = 0; i < 50 && live != 0; ++i) {  // SIGKILL delivery is asynchronous
    live = live_in_group(pgid);
    if (live != 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(live, 0) << "processes of group " << pgid << " survived the timeout";
  std::filesystem::remove(pid_file);
}

TEST(ExecHandler, CancelKillsTheCommand) {
  auto h = tf::make_handler("exec:sleep 30");
  tf::CancelToken token;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    token.cancel();
  });
  const auto t0 = tf::steady_ms();
  const auto o = h->handle(tf::TaskView{"j", "k", "", 1}, token);
  const auto ms = tf::steady_ms() - t0;
  canceller.join();
  EXPECT_FALSE(o.ok()) << describe(o);
  EXPECT_EQ(o.data, "cancelled") << describe(o);
  EXPECT_LT(ms, 1500) << "cancel took " << ms << " ms";
}

TEST(ExecHandler, ResultIsTruncatedToMaxBytes) {
  tf::HandlerOptions options;
  options.max_result_bytes = 1000;
  auto gen = tf::make_handler("exec:head -c 100000 /dev/zero", options);
  const auto o = run(*gen);
  EXPECT_TRUE(o.ok()) << describe(o);
  EXPECT_EQ(o.data.size(), 1000U) << "result bytes";

  // A large payload through cat: stdin is written while stdout is read (no pipe deadlock).
  std::string payload(1 << 20, 'x');
  for (std::size_t i = 0; i < payload.size(); i += 997)
    payload[i] = static_cast<char>('a' + i % 26);
  auto cat = tf::make_handler("exec:cat");
  const auto full = run(*cat, payload);
  EXPECT_TRUE(full.ok()) << describe(full);
  EXPECT_EQ(full.data.size(), payload.size()) << "1 MiB echoed through cat";
  EXPECT_TRUE(full.data == payload) << "echoed bytes differ";
  const auto cut = run(*tf::make_handler("exec:cat", options), payload);
  EXPECT_TRUE(cut.ok()) << describe(cut);
  EXPECT_EQ(cut.data, payload.substr(0, 1000)) << "truncated echo";
}

TEST(ExecHandler, CommandIgnoringStdinAndBackgroundLeftoversDoNotHang) {
  auto ignore = tf::make_handler("exec:echo done");
  const auto o = run(*ignore, std::string(1 << 20, 'p'));  // the write gets EPIPE, not SIGPIPE
  EXPECT_TRUE(o.ok()) << describe(o);
  EXPECT_EQ(o.data, "done\n") << describe(o);

  auto leftover = tf::make_handler("exec:sleep 30 & echo started");
  const auto t0 = tf::steady_ms();
  const auto l = run(*leftover);
  const auto ms = tf::steady_ms() - t0;
  EXPECT_TRUE(l.ok()) << describe(l);
  EXPECT_EQ(l.data, "started\n") << describe(l);
  EXPECT_LT(ms, 1500) << "a background child holding stdout made the task wait " << ms << " ms";
}

TEST(ExecHandler, NoDescriptorLeaksAndNoZombiesAfterManyRuns) {
  auto ok = tf::make_handler("exec:cat");
  auto bad = tf::make_handler("exec:cat >/dev/null; echo no >&2; exit 3");
  const auto before = open_fds();
  for (int i = 0; i < 200; ++i) {
    const auto o = run(i % 2 == 0 ? *ok : *bad, "x" + std::to_string(i));
    ASSERT_EQ(o.ok(), i % 2 == 0) << "run " << i << ": " << describe(o);
  }
  EXPECT_EQ(open_fds(), before) << "descriptors before and after 200 runs";
  int status = 0;
  errno = 0;
  EXPECT_EQ(::waitpid(-1, &status, WNOHANG), -1) << "an unreaped child is left";
  EXPECT_EQ(errno, ECHILD) << "expected no children at all";
}

TEST(ExecHandler, ConcurrentRunsDoNotMixTheirPipes) {
  auto h = tf::make_handler(R"(exec:cat; printf '|%s' "$TOPICFLOW_KEY")");
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        const auto key = "k" + std::to_string(t) + "-" + std::to_string(i);
        const auto o = run(*h, "p" + key, 0, key);
        if (!o.ok() || o.data != "p" + key + "|" + key) mismatches.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0) << "results that did not match their own task";
}
