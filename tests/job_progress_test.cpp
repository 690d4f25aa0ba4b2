// JobProgress: counts per job and status, which progress events are due, the event itself.
#include "job_progress.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace topicflow::sink {
namespace {

using store::Status;

store::StatusCounts counts(std::int64_t pending, std::int64_t running, std::int64_t completed,
                           std::int64_t failed) {
  store::StatusCounts c;
  c[Status::pending] = pending;
  c[Status::running] = running;
  c[Status::completed] = completed;
  c[Status::failed] = failed;
  return c;
}

JobCounts delta(const std::string& job, store::StatusCounts c) { return JobCounts{{job, c}}; }

std::string describe(const std::vector<std::string>& jobs) {
  std::string s = "[";
  for (const auto& j : jobs) s += j + " ";
  return s + "]";
}

TEST(JobProgress, AddedDeltasAccumulateAndMarkTheJobDirty) {
  JobProgress p;
  EXPECT_FALSE(p.has_dirty());
  p.add(delta("a", counts(3, 0, 0, 0)));
  EXPECT_TRUE(p.has_dirty());
  p.add(delta("a", counts(-1, 1, 0, 0)));
  EXPECT_EQ(p.counts("a"), counts(2, 1, 0, 0)) << "deltas add up";
  EXPECT_EQ(p.counts("unknown"), counts(0, 0, 0, 0));

  p.add(delta("b", counts(0, 0, 0, 0)));
  EXPECT_EQ(p.counts().count("b"), 0U) << "a zero delta is no change";
  const auto due = p.take_due(1000, false);
  EXPECT_EQ(due, std::vector<std::string>{"a"}) << "b did not move: " << describe(due);
  EXPECT_FALSE(p.has_dirty()) << "taken";
}

TEST(JobProgress, SetCountsDoesNotPublish) {
  JobProgress p;
  p.set("a", counts(5, 1, 2, 0));
  EXPECT_EQ(p.counts("a"), counts(5, 1, 2, 0));
  EXPECT_FALSE(p.has_dirty()) << "the counts read at start are not a change";
  EXPECT_EQ(p.unfinished(), 6);
}

TEST(JobProgress, UnfinishedIsPendingAndRunningOverAllJobs) {
  JobProgress p;
  p.set("a", counts(2, 1, 5, 7));
  p.set("b", counts(1, 0, 9, 0));
  EXPECT_EQ(p.unfinished(), 4);
}

TEST(JobProgress, AJobIsPublishedAtMostOncePerInterval) {
  JobProgress p;
  p.add(delta("a", counts(3, 0, 0, 0)));
  EXPECT_EQ(p.take_due(1000, false), std::vector<std::string>{"a"}) << "never published yet";
  p.add(delta("a", counts(-1, 1, 0, 0)));
  const auto early = p.take_due(1000 + JobProgress::kIntervalMs - 1, false);
  EXPECT_TRUE(early.empty()) << "published 99 ms ago: " << describe(early);
  EXPECT_TRUE(p.has_dirty()) << "still to be published";
  const auto due = p.take_due(1000 + JobProgress::kIntervalMs, false);
  EXPECT_EQ(due, std::vector<std::string>{"a"}) << "100 ms later";
  EXPECT_FALSE(p.has_dirty());
  EXPECT_TRUE(p.take_due(5000, false).empty()) << "nothing changed since";
}

TEST(JobProgress, ForcePublishesEveryDirtyJob) {
  JobProgress p;
  p.add(JobCounts{{"a", counts(1, 0, 0, 0)}, {"b", counts(2, 0, 0, 0)}});
  ASSERT_EQ(p.take_due(1000, false).size(), 2U);
  p.add(JobCounts{{"a", counts(-1, 1, 0, 0)}, {"b", counts(-1, 1, 0, 0)}});
  ASSERT_TRUE(p.take_due(1001, false).empty()) << "both published 1 ms ago";
  const auto forced = p.take_due(1001, true);
  EXPECT_EQ(forced, (std::vector<std::string>{"a", "b"})) << describe(forced);
  EXPECT_FALSE(p.has_dirty());
}

TEST(JobProgress, AFinishedJobIsPublishedAtOnce) {
  JobProgress p;
  p.add(JobCounts{{"a", counts(1, 0, 0, 0)}, {"b", counts(2, 0, 0, 0)}});
  ASSERT_EQ(p.take_due(1000, false).size(), 2U);
  p.add(JobCounts{{"a", counts(-1, 0, 1, 0)}, {"b", counts(-1, 0, 0, 1)}});
  const auto due = p.take_due(1001, false);
  EXPECT_EQ(due, std::vector<std::string>{"a"})
      << "a has nothing pending or running left; b has: " << describe(due);
  EXPECT_TRUE(p.has_dirty()) << "b waits for its interval";
  EXPECT_EQ(p.take_due(1100, false), std::vector<std::string>{"b"});
}

TEST(JobProgress, APublishedAnswerCountsAsAPublication) {
  JobProgress p;
  p.published("a", 1000);  // the answer to a hello
  p.add(delta("a", counts(2, 0, 0, 0)));
  EXPECT_TRUE(p.take_due(1050, false).empty()) << "published 50 ms ago";
  EXPECT_EQ(p.take_due(1100, false), std::vector<std::string>{"a"});
}

TEST(JobProgress, TheProgressEventCarriesCountsCountersTimeAndWorkers) {
  JobProgress p;
  p.set("a", counts(4, 3, 2, 1));
  const SinkCounters c{.messages = 100,
                       .updates = 11,
                       .batches = 12,
                       .busy_retries = 13,
                       .decode_errors = 14,
                       .dispatched = 15,
                       .redelivered = 16,
                       .retried = 17,
                       .duplicates = 18};
  const auto e = p.progress("a", c, 123456, 7);
  EXPECT_EQ(e.job, "a");
  EXPECT_EQ(e.pending, 4U);
  EXPECT_EQ(e.running, 3U);
  EXPECT_EQ(e.completed, 2U);
  EXPECT_EQ(e.failed, 1U);
  EXPECT_EQ(e.updates, 11U);
  EXPECT_EQ(e.batches, 12U);
  EXPECT_EQ(e.busy_retries, 13U);
  EXPECT_EQ(e.decode_errors, 14U);
  EXPECT_EQ(e.redelivered, 16U);
  EXPECT_EQ(e.retried, 17U);
  EXPECT_EQ(e.duplicates, 18U);
  EXPECT_EQ(e.time_ms, 123456);
  EXPECT_EQ(e.workers, 7U);
}

TEST(JobProgress, TheProgressEventClampsNegativeCountsToZero) {
  JobProgress p;
  p.set("a", counts(-2, -1, 5, -3));
  const auto e = p.progress("a", SinkCounters{}, 0, 0);
  EXPECT_EQ(e.pending, 0U) << "a count below zero is not a huge unsigned number";
  EXPECT_EQ(e.running, 0U);
  EXPECT_EQ(e.completed, 5U);
  EXPECT_EQ(e.failed, 0U);
  const auto unknown = p.progress("nobody", SinkCounters{}, 0, 0);
  EXPECT_EQ(unknown.job, "nobody");
  EXPECT_EQ(unknown.pending + unknown.running + unknown.completed + unknown.failed, 0U);
}

}  // namespace
}  // namespace topicflow::sink
