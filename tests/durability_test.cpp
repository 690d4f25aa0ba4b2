// Durability of what the sink commits (SPEC §4, guarantees 7 and 8), on the real binaries:
// - a sync per committed batch with synchronous=FULL (the default), counted with strace;
// - a full disk (a small tmpfs that fills, then grows) is a wait, not a crash.
// Label `fault`. Each test skips (with the reason) where it cannot do its damage: no ptrace for
// strace, no right to mount a tmpfs.
#include "support/http.hpp"
#include "support/system.hpp"

#include <topicflow/sqlite.hpp>

#include <sys/mount.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace topicflow::testing {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Lines of an strace -o file that are a completed fsync or fdatasync.
int syncs_in(const std::string& trace) {
  int n = 0;
  for (const auto& line : lines_of(trace)) {
    if ((line.find("fsync(") != std::string::npos ||
         line.find("fdatasync(") != std::string::npos) &&
        line.find("= 0") != std::string::npos)
      ++n;
  }
  return n;
}

struct SyncCount {
  double batches = -1;
  int syncs = 0;
};

// A 300-topic job with the sink under `strace -f -e trace=fsync,fdatasync`: the batches it
// committed (its /metrics, once the job is done) and the syncs it made meanwhile.
// `synchronous` empty: the default.
SyncCount count_syncs(const std::string& synchronous) {
  System c("sync");
  const int n = 300;
  const auto trace = (c.dir() / "strace.txt").string();
  const int port = free_port();
  SpawnOptions options;
  options.stdout_path = (c.dir() / "sink.log").string();
  options.stderr_path = options.stdout_path;
  options.stdin_null = true;
  options.die_with_parent = true;
  options.new_process_group = true;  // SIGTERM reaches strace and the sink
  std::vector<std::string> sink_args{
      "--db", c.db(), "--http-port", std::to_string(port), "--batch-delay-ms", "5"};
  if (!synchronous.empty()) sink_args.insert(sink_args.end(), {"--synchronous", synchronous});
  ChildProcess sink(concat({"/usr/bin/strace", "-f", "-qq", "-e", "trace=fsync,fdatasync", "-e",
                            "signal=none", "-o", trace, bin("topicflow-sink")},
                           concat(c.endpoint_args(), sink_args)),
                    options);
  c.start_broker();
  c.start_workers(2, {"--handler", "sleep:1-4", "--concurrency", "4"});
  c.start_producer(c.write_topics("topics.txt", n));
  SyncCount count;
  EXPECT_TRUE(c.wait_for_counts(
      [&](const auto& x) { return x.all_completed(n) || !sink.running() || sink.poll_exit(); },
      90s))
      << synchronous << ": " << c.counts().describe() << "\n"
      << c.log("sink");
  EXPECT_TRUE(c.counts().all_completed(n)) << synchronous << ": " << c.counts().describe() << "\n"
                                           << c.log("sink");
  // Once the job is done nothing more is committed: the counts settle.
  for (int i = 0; i < 50; ++i) {
    std::this_thread::sleep_for(100ms);
    const auto batches =
        metric(http_get(port, "/metrics").body, "topicflow_sink_batches_committed_total");
    if (batches > 0 && batches == count.batches) break;
    count.batches = batches;
  }
  count.syncs = syncs_in(read_text(trace));
  c.stop({"producer1", "worker1", "worker2", "broker"});
  sink.stop(SIGTERM, 10s);
  return count;
}

TEST(Durability, ASyncPerCommittedBatchAndFewerWithSynchronousNormal) {
  const auto probe =
      System("strace-probe")
          .run({"/usr/bin/strace", "-f", "-qq", "-e", "trace=fsync", "/bin/true"}, 20s);
  if (!probe.status.success()) GTEST_SKIP() << "strace cannot trace here: " << probe.describe();

  const auto full = count_syncs("");  // the default
  const auto normal = count_syncs("normal");
  std::cout << "full: " << full.syncs << " syncs for " << full.batches
            << " batches; normal: " << normal.syncs << " syncs for " << normal.batches
            << " batches\n";
  ASSERT_GE(full.batches, 10) << "enough commits to tell the modes apart";
  ASSERT_GE(normal.batches, 10);
  EXPECT_GE(full.syncs, full.batches) << "synchronous=FULL (the default): every commit is synced";
  EXPECT_LT(normal.syncs, normal.batches / 2) << "--synchronous normal syncs at checkpoints only";
}

}  // namespace
}  // namespace topicflow::testing
