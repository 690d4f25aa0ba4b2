// Dispatch and flow control with the real binaries (docs/ARCHITECTURE.md "Dispatch and flow
// control"): a job spreads evenly over its workers.
#include "support/system.hpp"

#include <gtest/gtest.h>

#include <string>

namespace topicflow::testing {
namespace {

// A job over 20 workers with one slot each: every worker runs about its share. Before the
// dispatch window was one task per slot, a burst of 2 x slots + 8 tasks could make the broker
// feed one connection after another: one worker ran up to 3.4 times its share here (13 times
// at N = 58 in bench/contention). The tasks last long enough (~2 s for the job at full speed)
// that the workers' start, all at once under `topicflow run`, is a small part of it even under a
// sanitizer on loaded cores (with sleep:10-30 the job was over before half of them had joined).
TEST(Dispatch, TwentyWorkersEachRunAboutTheirShare) {
  System sys("dispatch");
  const auto topics = sys.write_topics("topics.txt", 200);
  const auto r = sys.run({bin("topicflow"), "run", "--db", sys.db(), "--handler", "sleep:100-300",
                          "--workers", "20", "--concurrency", "1", "--progress", "none", topics},
                         std::chrono::seconds(120));
  ASSERT_EQ(r.status.shell_code(), 0) << r.describe();
  DbReader db(sys.db());
  ASSERT_TRUE(all_completed(db, "default", 200)) << r.describe();
  const auto most =
      db.scalar("SELECT max(c) FROM (SELECT count(*) AS c FROM topics GROUP BY worker)");
  const auto workers = db.scalar("SELECT count(DISTINCT worker) FROM topics");
  EXPECT_EQ(workers, 20) << "every worker ran some of the job";
  EXPECT_LE(most, 16) << "one worker ran " << most << " of 200 tasks (share: 10)";
  RecordProperty("most_tasks_on_one_worker", static_cast<int>(most));
}

}  // namespace
}  // namespace topicflow::testing
