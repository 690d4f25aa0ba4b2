// ReadyQueue: ready rows by (due, rowid), paused jobs set aside, remove_job, hints.
#include "ready_queue.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

namespace topicflow::sink {
namespace {

using Popped = std::tuple<std::int64_t, std::int64_t, std::string>;  // due, rowid, job

// Pops every entry due at `now`, in order.
std::vector<Popped> drain(ReadyQueue& q, std::int64_t now) {
  std::vector<Popped> out;
  while (const auto item = q.pop_due(now)) {
    out.emplace_back(item->due, item->rowid, q.job_name(item->job));
  }
  return out;
}

std::string describe(const std::vector<Popped>& v) {
  std::string s;
  for (const auto& [due, rowid, job] : v) {
    s += "(" + std::to_string(due) + "," + std::to_string(rowid) + "," + job + ") ";
  }
  return s;
}

TEST(ReadyQueue, PopsByDueThenRowidAcrossJobs) {
  ReadyQueue q;
  q.push(20, 1, "a");
  q.push(10, 5, "b");
  q.push(10, 3, "a");
  q.push(30, 2, "c");
  q.push(10, 4, "c");
  const auto popped = drain(q, 100);
  const std::vector<Popped> expected = {
      {10, 3, "a"}, {10, 4, "c"}, {10, 5, "b"}, {20, 1, "a"}, {30, 2, "c"}};
  EXPECT_EQ(popped, expected) << "popped " << describe(popped);
  EXPECT_EQ(q.size(), 0U) << "every entry was popped";
}

TEST(ReadyQueue, PopDueLeavesEntriesDueLaterThanNow) {
  ReadyQueue q;
  q.push(50, 1, "a");
  q.push(60, 2, "a");
  EXPECT_FALSE(q.pop_due(49)) << "nothing is due at 49";
  EXPECT_EQ(q.size(), 2U) << "a pop that found nothing due removes nothing";
  const auto first = q.pop_due(50);
  ASSERT_TRUE(first) << "an entry due at 50 is due at now = 50";
  EXPECT_EQ(first->rowid, 1);
  EXPECT_FALSE(q.pop_due(59)) << "the second entry is due at 60";
  EXPECT_EQ(q.size(), 1U);
  const auto second = q.pop_due(1000);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->rowid, 2);
}

TEST(ReadyQueue, NextDueIsTheEarliestEntryAndRemovesNothing) {
  ReadyQueue q;
  EXPECT_FALSE(q.next_due()) << "empty queue";
  q.push(30, 1, "a");
  q.push(10, 2, "b");
  q.push(20, 3, "a");
  EXPECT_EQ(q.next_due(), 10);
  EXPECT_EQ(q.size(), 3U) << "next_due only looks";
  ASSERT_TRUE(q.pop_due(10));
  EXPECT_EQ(q.next_due(), 20) << "after popping the entry due at 10";
}

TEST(ReadyQueue, PausedJobsAreSetAsideAndComeBackOnResume) {
  ReadyQueue q;
  q.push(10, 1, "a");
  q.push(20, 2, "b");
  q.push(30, 3, "a");
  q.push(40, 4, "b");
  q.pause("a");
  EXPECT_TRUE(q.paused("a"));
  EXPECT_FALSE(q.paused("b"));
  EXPECT_FALSE(q.paused("never-seen"));

  const auto while_paused = drain(q, 100);
  const std::vector<Popped> only_b = {{20, 2, "b"}, {40, 4, "b"}};
  EXPECT_EQ(while_paused, only_b) << "popped " << describe(while_paused);
  EXPECT_FALSE(q.next_due()) << "a paused job's entries are not due";
  EXPECT_EQ(q.size(), 2U) << "set-aside entries are still held";

  q.push(15, 9, "b");  // between a's two entries
  q.resume("a");
  EXPECT_FALSE(q.paused("a"));
  EXPECT_EQ(q.next_due(), 10) << "a's earliest entry is back at the front";
  const auto after = drain(q, 100);
  const std::vector<Popped> merged = {{10, 1, "a"}, {15, 9, "b"}, {30, 3, "a"}};
  EXPECT_EQ(after, merged) << "popped " << describe(after);
  EXPECT_EQ(q.size(), 0U);
}

TEST(ReadyQueue, PausingOneJobDoesNotHoldBackAnotherBehindIt) {
  ReadyQueue q;
  q.push(10, 1, "a");
  q.push(11, 2, "a");
  q.push(12, 3, "b");
  q.pause("a");
  EXPECT_EQ(q.next_due(), 12) << "b's entry is next although a's are earlier";
  const auto item = q.pop_due(12);
  ASSERT_TRUE(item);
  EXPECT_EQ(q.job_name(item->job), "b");
  EXPECT_EQ(item->rowid, 3);
}

TEST(ReadyQueue, EntriesPushedWhilePausedWaitForResume) {
  ReadyQueue q;
  q.pause("a");
  q.push(10, 1, "a");
  EXPECT_FALSE(q.pop_due(100)) << "pushed while paused";
  EXPECT_EQ(q.size(), 1U);
  q.resume("a");
  const auto item = q.pop_due(100);
  ASSERT_TRUE(item) << "resumed";
  EXPECT_EQ(item->rowid, 1);
}

TEST(ReadyQueue, RemoveJobDropsItsEntriesIncludingSetAsideOnes) {
  ReadyQueue q;
  q.push(10, 1, "a");
  q.push(15, 3, "b");
  q.push(20, 2, "a");
  q.pause("a");
  ASSERT_EQ(q.next_due(), 15) << "a's entry due at 10 is now set aside";
  ASSERT_EQ(q.size(), 3U);

  q.remove_job("a");
  EXPECT_EQ(q.size(), 1U) << "only b's entry is left";
  q.resume("a");
  const auto left = drain(q, 100);
  const std::vector<Popped> only_b = {{15, 3, "b"}};
  EXPECT_EQ(left, only_b) << "a removed entry came back on resume: " << describe(left);
  EXPECT_EQ(q.size(), 0U);
}

TEST(ReadyQueue, RemoveJobKeepsTheOrderOfOtherJobs) {
  ReadyQueue q;
  for (std::int64_t i = 0; i < 50; ++i) {
    q.push(100 - i, i, (i % 3 == 0) ? "gone" : "kept");
  }
  q.remove_job("gone");
  const auto left = drain(q, 1000);
  ASSERT_EQ(left.size(), 33U) << describe(left);
  for (std::size_t i = 1; i < left.size(); ++i) {
    EXPECT_LT(std::get<0>(left[i - 1]), std::get<0>(left[i]))
        << "at " << i << ": " << describe(left);
  }
  for (const auto& [due, rowid, job] : left) EXPECT_EQ(job, "kept") << "rowid " << rowid;
}

TEST(ReadyQueue, DuplicateEntriesAreKept) {
  ReadyQueue q;
  q.push(10, 7, "a");
  q.push(10, 7, "a");
  EXPECT_EQ(q.size(), 2U) << "entries are hints: a second push is held, the caller skips it";
  const auto popped = drain(q, 10);
  const std::vector<Popped> twice = {{10, 7, "a"}, {10, 7, "a"}};
  EXPECT_EQ(popped, twice) << describe(popped);
}

TEST(ReadyQueue, JobNamesAreInternedOnce) {
  ReadyQueue q;
  const auto a = q.job_index("a");
  const auto b = q.job_index("b");
  EXPECT_NE(a, b);
  EXPECT_EQ(q.job_index("a"), a) << "the same name gives the same index";
  EXPECT_EQ(q.job_name(a), "a");
  EXPECT_EQ(q.job_name(b), "b");
  q.push(1, 1, a);
  const auto item = q.pop_due(1);
  ASSERT_TRUE(item);
  EXPECT_EQ(item->job, a);
}

}  // namespace
}  // namespace topicflow::sink
