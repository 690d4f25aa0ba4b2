// The Supervisor of `topicflow run` (cli/supervisor.cpp) with fake processes and a clock moved by
// hand: which deaths stop the run, which are restarted and when (label unit, no processes, no
// sleeps).
#include <topicflow/clock.hpp>
#include <topicflow/supervisor.hpp>

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace topicflow::cli {
namespace {

// What the test controls of a fake process: whether (and how) it has ended.
struct FakeState {
  std::optional<ExitStatus> exit;
  std::vector<int> signals;  // received, in order
};

class FakeProcess final : public Process {
 public:
  FakeProcess(pid_t pid, std::shared_ptr<FakeState> state) : pid_(pid), state_(std::move(state)) {}
  [[nodiscard]] pid_t pid() const noexcept override { return pid_; }
  [[nodiscard]] bool running() const noexcept override { return !state_->exit; }
  std::optional<ExitStatus> poll_exit() noexcept override { return state_->exit; }
  void terminate(int signal) noexcept override {
    state_->signals.push_back(signal);
    if (!state_->exit) state_->exit = ExitStatus{0, signal};
  }
  std::optional<ExitStatus> wait_for(std::chrono::milliseconds) noexcept override {
    return state_->exit;
  }
  ExitStatus stop(int signal, std::chrono::milliseconds) noexcept override {
    terminate(signal);
    return *state_->exit;
  }

 private:
  pid_t pid_;
  std::shared_ptr<FakeState> state_;
};

// Starts fake processes; the test reaches each start of a child by its name.
class FakeLauncher {
 public:
  Launcher launcher() {
    return [this](const std::vector<std::string>& argv, const SpawnOptions&) {
      const std::lock_guard lock(mutex_);  // start_in_background calls it from its thread
      if (fail_next_) {
        fail_next_ = false;
        throw std::runtime_error("cannot start " + argv.front());
      }
      auto state = std::make_shared<FakeState>();
      started_[argv.front()].push_back(state);
      return std::unique_ptr<Process>(std::make_unique<FakeProcess>(++next_pid_, state));
    };
  }
  // The n-th start (0: the first) of the child whose argv[0] is `name`.
  FakeState& start(const std::string& name, std::size_t n = 0) {
    const std::lock_guard lock(mutex_);
    return *started_.at(name).at(n);
  }
  [[nodiscard]] std::size_t starts(const std::string& name) const {
    const std::lock_guard lock(mutex_);
    const auto it = started_.find(name);
    return it == started_.end() ? 0 : it->second.size();
  }
  void fail_next() {
    const std::lock_guard lock(mutex_);
    fail_next_ = true;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::vector<std::shared_ptr<FakeState>>> started_;
  pid_t next_pid_ = 100;
  bool fail_next_ = false;
};

constexpr ExitStatus exited(int code) { return ExitStatus{code, 0}; }
constexpr ExitStatus killed(int signal) { return ExitStatus{0, signal}; }

class SupervisorTest : public ::testing::Test {
 protected:
  FakeLauncher fake_;
  ManualClock clock_;
  Supervisor sup_{fake_.launcher(), clock_};
};

TEST_F(SupervisorTest, AChildThatRejectsItsOptionsStopsTheRunWithStatusTwo) {
  auto& w = sup_.add("worker 1", {"w"}, true);
  sup_.start(w);
  clock_.advance(5000);  // whenever it happens
  fake_.start("w").exit = exited(2);
  const auto fatal = sup_.supervise();
  ASSERT_TRUE(fatal.has_value());
  EXPECT_EQ(fatal->exit_code, 2);
  EXPECT_EQ(fatal->reason, "worker 1 (pid 101) rejected its options");
  EXPECT_EQ(fake_.starts("w"), 1U) << "not restarted";
}

TEST_F(SupervisorTest, AChildThatExitsByItselfAtStartupStopsTheRun) {
  auto& s = sup_.add("sink", {"s"}, true);
  sup_.start(s);
  clock_.advance(Supervisor::kStartupGraceMs - 1);
  fake_.start("s").exit = exited(1);
  const auto fatal = sup_.supervise();
  ASSERT_TRUE(fatal.has_value());
  EXPECT_EQ(fatal->exit_code, 1);
  EXPECT_EQ(fatal->reason, "sink (pid 101) exited with status 1 at startup");
}

TEST_F(SupervisorTest, AChildKilledAtStartupIsRestarted) {
  auto& w = sup_.add("worker 1", {"w"}, true);
  sup_.start(w);
  fake_.start("w").exit = killed(SIGKILL);
  EXPECT_FALSE(sup_.supervise().has_value()) << "a signal is bad luck, not a bad configuration";
  clock_.advance(Backoff(200, 10000).ceiling(0));
  EXPECT_FALSE(sup_.supervise().has_value());
  EXPECT_EQ(fake_.starts("w"), 2U) << "restarted once its first backoff (at most 200 ms) passed";
  EXPECT_EQ(w.restarts, 1U);
}

TEST_F(SupervisorTest, AChildDyingMidRunIsRestartedWithGrowingBackoff) {
  auto& b = sup_.add("broker", {"b"}, true);
  sup_.start(b);
  clock_.advance(Supervisor::kStartupGraceMs);
  for (unsigned crash = 0; crash < 4; ++crash) {
    fake_.start("b", crash).exit = exited(1);
    ASSERT_FALSE(sup_.supervise().has_value()) << "crash " << crash;
    ASSERT_TRUE(b.restart_at.has_value());
    const auto delay = *b.restart_at - clock_.steady_ms();
    EXPECT_GE(delay, Supervisor::kMinRestartMs) << "crash " << crash;
    EXPECT_LE(delay, std::max(Supervisor::kMinRestartMs, Backoff(200, 10000).ceiling(crash)))
        << "crash " << crash << ": capped exponential backoff";
    clock_.advance(delay);
    ASSERT_FALSE(sup_.supervise().has_value());
    EXPECT_EQ(fake_.starts("b"), crash + 2) << "restarted when its delay passed";
  }
  EXPECT_EQ(sup_.restarts(), 4U);
  EXPECT_EQ(sup_.restarts_text(), "broker x4");
}

// What the supervisor logs while `body` runs.
template <typename Body>
std::string logged(Body body) {
  std::ostringstream out;
  const auto previous = spdlog::default_logger();
  auto logger = std::make_shared<spdlog::logger>(
      "test", std::make_shared<spdlog::sinks::ostream_sink_st>(out));
  spdlog::set_default_logger(logger);
  body();
  spdlog::set_default_logger(previous);
  return out.str();
}

TEST_F(SupervisorTest, ADeathMidRunSaysSoWithHowLongTheChildRan) {
  auto& s = sup_.add("sink", {"s"}, true);
  sup_.start(s);
  clock_.advance(42000);
  fake_.start("s").exit = exited(1);
  const auto log = logged([&] { EXPECT_FALSE(sup_.supervise().has_value()) << "restarted"; });
  EXPECT_NE(log.find("sink (pid 101) exited with status 1 mid-run (42000 ms after it started); "
                     "restarting in "),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("at startup"), std::string::npos) << log;
}

TEST_F(SupervisorTest, ASinkThatAnsweredDyingSoonAfterIsMidRunNotAtStartup) {
  auto& s = sup_.add("sink", {"s"}, true);
  sup_.start(s);
  clock_.advance(300);
  Supervisor::mark_ready(s);          // it answered the run's hello
  clock_.advance(300);                // still within kStartupGraceMs of its start
  fake_.start("s").exit = exited(1);  // e.g. an I/O error it could not survive
  const auto log = logged([&] { EXPECT_FALSE(sup_.supervise().has_value()) << "restarted"; });
  EXPECT_NE(log.find("exited with status 1 mid-run (600 ms after it started)"), std::string::npos)
      << log;
  clock_.advance(*s.restart_at - clock_.steady_ms());
  EXPECT_FALSE(sup_.supervise().has_value());
  EXPECT_EQ(fake_.starts("s"), 2U);
}

TEST_F(SupervisorTest, AChildKilledAtStartupSaysSoAndIsRestarted) {
  auto& w = sup_.add("worker 1", {"w"}, true);
  sup_.start(w);
  clock_.advance(100);
  fake_.start("w").exit = killed(SIGKILL);
  const auto log = logged([&] { EXPECT_FALSE(sup_.supervise().has_value()); });
  EXPECT_NE(log.find("worker 1 (pid 101) exited with signal 9 (Killed) at startup (100 ms after "
                     "it started); restarting in "),
            std::string::npos)
      << log;
}

// A sink waiting for disk space (or a busy database) is a live process: supervise() only ever
// acts on a child that ended, so however long it waits it is neither restarted nor given up on.
TEST_F(SupervisorTest, ALiveChildIsLeftAloneHoweverLongItWaits) {
  auto& s = sup_.add("sink", {"s"}, true);
  sup_.start(s);
  Supervisor::mark_ready(s);
  for (int minute = 0; minute < 60; ++minute) {
    clock_.advance(60000);
    ASSERT_FALSE(sup_.supervise().has_value());
  }
  EXPECT_EQ(fake_.starts("s"), 1U);
  EXPECT_TRUE(fake_.start("s").signals.empty()) << "never signalled";
  EXPECT_EQ(sup_.restarts(), 0U);
}

TEST_F(SupervisorTest, ALongHealthyRunResetsTheBackoff) {
  auto& w = sup_.add("worker 1", {"w"}, true);
  sup_.start(w);
  clock_.advance(Supervisor::kStartupGraceMs);
  fake_.start("w").exit = exited(1);
  ASSERT_FALSE(sup_.supervise().has_value());
  clock_.advance(*w.restart_at - clock_.steady_ms());
  ASSERT_FALSE(sup_.supervise().has_value());
  EXPECT_EQ(w.crashes, 1U);
  clock_.advance(Supervisor::kHealthyRunMs);
  fake_.start("w", 1).exit = exited(1);
  ASSERT_FALSE(sup_.supervise().has_value());
  EXPECT_EQ(w.crashes, 1U) << "ran 30 s: the backoff starts over (counted again from 0)";
  EXPECT_LE(*w.restart_at - clock_.steady_ms(), Backoff(200, 10000).ceiling(0));
}

TEST_F(SupervisorTest, AChildThatCannotBeStartedAgainStopsTheRun) {
  auto& w = sup_.add("worker 1", {"w"}, true);
  sup_.start(w);
  clock_.advance(Supervisor::kStartupGraceMs);
  fake_.start("w").exit = killed(SIGSEGV);
  ASSERT_FALSE(sup_.supervise().has_value());
  fake_.fail_next();
  clock_.advance(*w.restart_at - clock_.steady_ms());
  const auto fatal = sup_.supervise();
  ASSERT_TRUE(fatal.has_value());
  EXPECT_EQ(fatal->reason, "cannot restart worker 1: cannot start w");
}

TEST_F(SupervisorTest, ChildrenNotRestartableOrNotStartedAreLeftAlone) {
  auto& p = sup_.add("producer", {"p"}, false);
  sup_.add("later", {"l"}, true);  // declared, never started
  sup_.start(p);
  fake_.start("p").exit = exited(1);
  EXPECT_FALSE(sup_.supervise().has_value()) << "the producer's exit is run's to judge";
  EXPECT_EQ(fake_.starts("p"), 1U);
  EXPECT_EQ(fake_.starts("l"), 0U);
}

TEST_F(SupervisorTest, StopSignalsTheGroupAndCancelsPendingRestarts) {
  auto& a = sup_.add("worker 1", {"a"}, true);
  auto& b = sup_.add("worker 2", {"b"}, true);
  auto& never = sup_.add("producer", {"p"}, false);
  sup_.start(a);
  sup_.start(b);
  clock_.advance(Supervisor::kStartupGraceMs);
  fake_.start("b").exit = killed(SIGKILL);
  ASSERT_FALSE(sup_.supervise().has_value());
  ASSERT_TRUE(b.restart_at.has_value());
  sup_.stop({&a, &b, &never}, std::chrono::milliseconds(10));
  EXPECT_EQ(fake_.start("a").signals, std::vector<int>{SIGTERM});
  EXPECT_FALSE(b.restart_at.has_value()) << "a stopped child is not restarted";
  clock_.advance(60000);
  EXPECT_FALSE(sup_.supervise().has_value());
  EXPECT_EQ(fake_.starts("b"), 1U);
}

TEST_F(SupervisorTest, BackgroundStartsAreTakenOverBySupervise) {
  std::vector<Child*> workers;
  for (int i = 1; i <= 5; ++i)
    workers.push_back(&sup_.add("worker " + std::to_string(i), {"w" + std::to_string(i)}, true));
  sup_.start_in_background(workers);
  const auto until = steady_ms() + 5000;
  while (sup_.starting() > 0 && steady_ms() < until) {
    ASSERT_FALSE(sup_.supervise().has_value());
    std::this_thread::yield();
  }
  EXPECT_EQ(sup_.starting(), 0U);
  for (auto* w : workers) {
    ASSERT_NE(w->process, nullptr) << w->name << " was not taken over";
    EXPECT_EQ(w->first_started_ms, clock_.steady_ms());
  }
  // Taken over: supervised like any other child.
  clock_.advance(Supervisor::kStartupGraceMs);
  fake_.start("w3").exit = killed(SIGKILL);
  ASSERT_FALSE(sup_.supervise().has_value());
  EXPECT_TRUE(workers[2]->restart_at.has_value());
}

TEST_F(SupervisorTest, ABackgroundStartThatFailsStopsTheRun) {
  auto& w = sup_.add("worker 1", {"w"}, true);
  fake_.fail_next();
  sup_.start_in_background({&w});
  std::optional<Fatal> fatal;
  const auto until = steady_ms() + 5000;
  while (!fatal && steady_ms() < until) fatal = sup_.supervise();
  ASSERT_TRUE(fatal.has_value());
  EXPECT_EQ(fatal->reason, "cannot start worker 1: cannot start w");
  EXPECT_EQ(fatal->exit_code, 1);
}

// With real processes: a child that dies with its parent (PR_SET_PDEATHSIG) is killed when the
// *thread* that forked it ends, so the thread that starts a background group must stay.
TEST(SupervisorProcesses, BackgroundChildrenOutliveTheirStartsAndStopOnSigterm) {
  Supervisor sup;
  SpawnOptions options;
  options.die_with_parent = true;
  auto& a = sup.add("a", {"/bin/sleep", "30"}, true, options);
  auto& b = sup.add("b", {"/bin/sleep", "30"}, true, options);
  sup.start_in_background({&a, &b});
  const auto until = steady_ms() + 10000;
  while (sup.starting() > 0 && steady_ms() < until) ASSERT_FALSE(sup.supervise().has_value());
  ASSERT_NE(a.process, nullptr);
  ASSERT_NE(b.process, nullptr);
  // Had the starting thread ended, the kernel would have sent SIGKILL by now or soon: give it
  // that chance, then stop them ourselves.
  EXPECT_FALSE(a.process->wait_for(std::chrono::milliseconds(200)).has_value())
      << "a background child died on its own";
  sup.stop({&a, &b}, std::chrono::milliseconds(5000));
  for (auto* c : {&a, &b}) {
    const auto status = c->process->poll_exit();
    ASSERT_TRUE(status.has_value()) << c->name;
    EXPECT_EQ(status->signal, SIGTERM) << c->name << " ended by " << status->describe();
  }
}

}  // namespace
}  // namespace topicflow::cli
