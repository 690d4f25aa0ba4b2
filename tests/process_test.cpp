#include <topicflow/process.hpp>

#include "support/proc.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <thread>
#include <type_traits>

namespace topicflow {
namespace {

using topicflow::testing::TempDir;

static_assert(std::is_nothrow_destructible_v<ChildProcess>);
static_assert(std::is_nothrow_move_constructible_v<ChildProcess>);
static_assert(!std::is_copy_constructible_v<ChildProcess>);

using namespace std::chrono_literals;

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

using topicflow::testing::alive;  // a zombie counts as dead: see support/proc.hpp
using topicflow::testing::proc_stat;

class ProcessTest : public ::testing::Test {
 protected:
  TempDir tmp_{"process-test"};
  const std::filesystem::path& dir_ = tmp_.path();
};

TEST_F(ProcessTest, ReportsTheExitCode) {
  ChildProcess child({"/bin/sh", "-c", "exit 3"});
  auto status = child.wait_for(5s);
  ASSERT_TRUE(status.has_value()) << "sh did not exit";
  EXPECT_EQ(status->code, 3);
  EXPECT_FALSE(status->signaled());
  EXPECT_EQ(status->describe(), "status 3");
  EXPECT_FALSE(child.running());
}

TEST_F(ProcessTest, FindsProgramsInPath) {
  ChildProcess child({"true"});
  auto status = child.wait_for(5s);
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(status->success());
}

TEST_F(ProcessTest, PassesEnvironmentAndRedirectsOutput) {
  const auto out = (dir_ / "out.log").string();
  SpawnOptions options;
  options.env = {{"TOPICFLOW_PROCESS_TEST", "forty-two"}, {"HOME", "/nowhere"}};
  options.stdout_path = out;
  options.stderr_path = out;
  ChildProcess child({"/bin/sh", "-c", "echo \"$TOPICFLOW_PROCESS_TEST $HOME\"; echo oops >&2"},
                     options);
  auto status = child.wait_for(5s);
  ASSERT_TRUE(status && status->success()) << (status ? status->describe() : "still running");
  EXPECT_EQ(read_file(out), "forty-two /nowhere\noops\n");
}

TEST_F(ProcessTest, PollExitIsNonBlockingAndTerminateSignals) {
  ChildProcess child({"sleep", "30"});
  EXPECT_FALSE(child.poll_exit().has_value());
  EXPECT_TRUE(child.running());
  child.terminate(SIGTERM);
  auto status = child.wait_for(5s);
  ASSERT_TRUE(status.has_value()) << "SIGTERM did not end sleep";
  EXPECT_TRUE(status->signaled());
  EXPECT_EQ(status->signal, SIGTERM);
  EXPECT_EQ(status->shell_code(), 128 + SIGTERM);
}

TEST_F(ProcessTest, StopEscalatesToSigkill) {
  // A child that ignores SIGTERM still ends: stop() sends SIGKILL after the grace period.
  ChildProcess child({"/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.05; done"});
  std::this_thread::sleep_for(100ms);
  const auto start = std::chrono::steady_clock::now();
  const auto status = child.stop(SIGTERM, 300ms);
  EXPECT_EQ(status.signal, SIGKILL) << status.describe();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST_F(ProcessTest, DestructorKillsAndReaps) {
  pid_t pid = -1;
  {
    ChildProcess child({"sleep", "30"});
    pid = child.pid();
    ASSERT_TRUE(alive(pid));
  }
  EXPECT_FALSE(proc_stat(pid).has_value())
      << "the destructor must kill and reap (no zombie either)";
}

TEST_F(ProcessTest, ProcessGroupTakesGrandchildrenAlong) {
  const auto pid_file = (dir_ / "grandchild.pid").string();
  SpawnOptions options;
  options.new_process_group = true;
  ChildProcess child({"/bin/sh", "-c", "sleep 30 & echo $! > " + pid_file + "; wait"}, options);
  pid_t grandchild = -1;
  for (int i = 0; i < 200 && grandchild <= 0; ++i) {
    std::this_thread::sleep_for(10ms);
    const auto text = read_file(pid_file);
    if (!text.empty() && text.back() == '\n') grandchild = std::stoi(text);
  }
  ASSERT_GT(grandchild, 0) << "the shell never wrote its child's pid";
  EXPECT_EQ(::getpgid(child.pid()), child.pid());
  child.terminate(SIGTERM);
  ASSERT_TRUE(child.wait_for(5s).has_value());
  EXPECT_TRUE(topicflow::testing::dies_within(grandchild, 2s))
      << "grandchild " << grandchild << " survived its group's SIGTERM";
}

TEST_F(ProcessTest, MissingProgramThrowsAReadableError) {
  try {
    ChildProcess child({(dir_ / "no-such-binary").string()});
    FAIL() << "starting a missing program must throw";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot start"), std::string::npos) << e.what();
    EXPECT_EQ(e.code().value(), ENOENT) << e.what();
  }
  EXPECT_THROW(ChildProcess({"no-such-program-in-path-xyz"}), std::system_error);
  EXPECT_THROW(ChildProcess(std::vector<std::string>{}), std::invalid_argument);
}

TEST_F(ProcessTest, MoveTransfersOwnership) {
  ChildProcess a({"sleep", "30"});
  const pid_t pid = a.pid();
  ChildProcess b(std::move(a));
  EXPECT_EQ(b.pid(), pid);
  EXPECT_FALSE(a.running());  // NOLINT(bugprone-use-after-move): moved-from state is specified
  b = ChildProcess({"true"});
  EXPECT_FALSE(proc_stat(pid).has_value()) << "assigning over a running child kills and reaps it";
}

TEST(ExecutableDir, IsTheTestBinarysDirectory) {
  const auto dir = executable_dir();
  ASSERT_FALSE(dir.empty());
  EXPECT_EQ(dir.front(), '/');
  EXPECT_TRUE(std::filesystem::is_directory(dir)) << dir;
  ::setenv("TOPICFLOW_BIN_DIR", "/opt/elsewhere", 1);
  EXPECT_EQ(topicflow_bin_dir(), "/opt/elsewhere");
  ::unsetenv("TOPICFLOW_BIN_DIR");
  EXPECT_EQ(topicflow_bin_dir(), dir);
}

}  // namespace
}  // namespace topicflow
