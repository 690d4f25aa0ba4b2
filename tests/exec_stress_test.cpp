// exec: process hygiene under load (label e2e). 3,000 exec tasks through one real worker with
// --concurrency 4; afterwards the worker holds no more descriptors than before the run (within a
// small bound) and has no children at all, zombie or alive. The scan of the worker's children is
// shown to work by sampling it during the run, when commands are running.
#include "support/system.hpp"

#include <gtest/gtest.h>

#include <dirent.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace topicflow::testing {
namespace {

using namespace std::chrono_literals;

// Open descriptors of `pid`.
int fd_count(pid_t pid) {
  int n = 0;
  for ([[maybe_unused]] const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    ++n;
  }
  return n;
}

struct Children {
  int alive = 0;
  int zombies = 0;
};

// Every process whose parent is `pid`, from /proc/N/stat ("N (comm) S PPID ...").
Children children_of(pid_t pid) {
  Children out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) throw std::runtime_error("cannot open /proc");
  while (const dirent* entry = ::readdir(proc)) {
    const std::string name = entry->d_name;
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto stat = read_text("/proc/" + name + "/stat");
    const auto close = stat.rfind(')');
    if (close == std::string::npos || close + 4 > stat.size()) continue;  // gone meanwhile
    const char state = stat[close + 2];
    const long ppid = std::strtol(stat.c_str() + close + 4, nullptr, 10);
    if (ppid != pid) continue;
    (state == 'Z' ? out.zombies : out.alive) += 1;
  }
  ::closedir(proc);
  return out;
}

std::string numbered_topics(int n, const std::string& prefix) {
  std::string text;
  for (int i = 1; i <= n; ++i) text += prefix + std::to_string(i) + "\n";
  return text;
}

TEST(ExecStress, ThousandsOfTasksLeaveNoZombiesAndNoDescriptors) {
  // (3,000: enough to show a leak of one descriptor or child per task, and done within the
  // deadline on a loaded 2-core machine, where an exec costs up to ~100 ms)
  constexpr int kTasks = 3000;
  System sys;
  sys.start("sink", "topicflow-sink", {"--db", sys.db()});
  sys.start("broker", "topicflow-broker", {});
  // cat: every task uses all three pipes and starts a real program (sh, then cat).
  auto& worker =
      sys.start("worker", "topicflow-worker", {"--handler", "exec:cat", "--concurrency", "4"});
  const pid_t pid = worker.pid();

  const auto produce = [&](const std::string& job, const std::string& file) {
    std::vector<std::string> argv{
        bin("topicflow-producer"), file, "--job", job, "--wait", "--progress", "none"};
    for (auto& a : sys.endpoint_args()) argv.push_back(a);
    return argv;
  };

  // Warm-up: connections made, threads started, lazily opened descriptors opened.
  const auto warm =
      sys.run(produce("warmup", sys.write_file("warmup.txt", numbered_topics(100, "w"))), 120s);
  ASSERT_EQ(warm.status.shell_code(), 0) << warm.describe() << "\nworker log:\n"
                                         << sys.log("worker");
  const int fds_before = fd_count(pid);
  ASSERT_EQ(children_of(pid).alive + children_of(pid).zombies, 0);

  // The run, with the producer in the background so the worker can be watched meanwhile.
  const auto started = std::chrono::steady_clock::now();
  SpawnOptions options;
  options.stdout_path = (sys.dir() / "producer.log").string();
  options.stderr_path = options.stdout_path;
  options.stdin_null = true;
  options.die_with_parent = true;
  ChildProcess producer(
      produce("stress", sys.write_file("stress.txt", numbered_topics(kTasks, "t"))), options);
  int max_children = 0;
  int max_fds = fds_before;
  std::optional<ExitStatus> produced;
  while (!(produced = producer.wait_for(50ms))) {
    const auto c = children_of(pid);
    max_children = std::max(max_children, c.alive + c.zombies);
    max_fds = std::max(max_fds, fd_count(pid));
    ASSERT_LT(std::chrono::steady_clock::now() - started, 360s) << "the run did not finish";
  }
  const auto seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  ASSERT_EQ(produced->shell_code(), 0) << read_text(sys.dir() / "producer.log") << "\nworker log:\n"
                                       << sys.log("worker");

  // The worker reports a task only after its command was reaped; give stragglers of the kill of
  // the last group a moment all the same.
  std::this_thread::sleep_for(200ms);
  const int fds_after = fd_count(pid);
  const auto after = children_of(pid);
  std::cout << kTasks << " exec tasks in " << seconds << " s (" << kTasks / seconds
            << " tasks/s); worker descriptors " << fds_before << " before, at most " << max_fds
            << " during, " << fds_after << " after; at most " << max_children
            << " children seen during the run\n";
  EXPECT_GE(max_children, 1) << "the children scan never saw a running command: it proves nothing";
  EXPECT_LE(fds_after, fds_before + 4) << "descriptors leaked over " << kTasks << " tasks";
  EXPECT_EQ(after.zombies, 0) << "zombie children left behind";
  EXPECT_EQ(after.alive, 0) << "children still running after every task completed";
  // While running: per task at most 3 pipes (6 ends, before the spawn closes the child's three)
  // and a pidfd, times 4 tasks, plus a few transient ones (the sink's connection, /proc reads).
  EXPECT_LE(max_fds, fds_before + 4 * 7 + 8);

  sys.stop_all();
  DbReader db(sys.db());
  EXPECT_TRUE(all_completed(db, "stress", kTasks));
  const auto results = db.results("stress");
  ASSERT_EQ(results.size(), static_cast<std::size_t>(kTasks));
  int mismatched = 0;
  for (const auto& [key, result] : results) mismatched += result == key ? 0 : 1;
  EXPECT_EQ(mismatched, 0) << "cat must echo each payload (the topic's line) back";
}

}  // namespace
}  // namespace topicflow::testing
