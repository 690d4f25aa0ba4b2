// DispatchWindow: window size from worker slots and start rate, tasks per message. Pure: every
// test moves time by passing `now`.
#include "dispatch_window.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace topicflow::sink {
namespace {

constexpr std::int64_t kTtl = 30000;

TEST(DispatchWindow, EightTasksBeforeAnyWorkerIsHeardFrom) {
  DispatchWindow w(1000, 20, kTtl);
  EXPECT_EQ(w.size(), DispatchWindow::kWithoutWorkers);
  EXPECT_EQ(w.size(), 8);
  EXPECT_EQ(w.workers(), 0U);
  w.taken(500);
  w.tick(100);
  EXPECT_EQ(w.size(), 8) << "no worker: a fast start rate does not grow the window";

  DispatchWindow small(5, 20, kTtl);
  EXPECT_EQ(small.size(), 5) << "--dispatch-window below 8 caps it";
}

TEST(DispatchWindow, OneTaskPerSlotOnceWorkersReport) {
  DispatchWindow w(1000, 20, kTtl);
  w.heard_from("w1", 4, 0);
  EXPECT_EQ(w.size(), 4) << "one worker with 4 slots";
  w.heard_from("w2", 2, 0);
  EXPECT_EQ(w.size(), 6) << "4 + 2 slots";
  EXPECT_EQ(w.workers(), 2U);
  EXPECT_EQ(w.total_slots(), 6U);
  w.heard_from("w1", 1, 10);
  EXPECT_EQ(w.size(), 3) << "w1 restarted with 1 slot";
  w.heard_from("w2", 2, 20);
  EXPECT_EQ(w.size(), 3) << "a report with the same slots changes nothing";

  DispatchWindow capped(5, 20, kTtl);
  capped.heard_from("w1", 4, 0);
  capped.heard_from("w2", 4, 0);
  EXPECT_EQ(capped.size(), 5) << "capped by --dispatch-window";
}

TEST(DispatchWindow, AWorkerWithoutASlotCountCountsAsOneSlot) {
  DispatchWindow w(1000, 20, kTtl);
  w.heard_from("w1", 3, 0);
  w.heard_from("old", 0, 0);
  EXPECT_EQ(w.total_slots(), 4U);
  w.tick(100);
  EXPECT_EQ(w.size(), 4) << "after the next tick";
}

TEST(DispatchWindow, FastStartsGrowTheQueuePerSlot) {
  DispatchWindow w(1000, 20, kTtl);
  w.heard_from("w1", 2, 0);
  ASSERT_EQ(w.size(), 2);
  w.taken(200);  // 200 tasks started in 100 ms: 2000/s, 1000/s per slot
  w.tick(100);
  EXPECT_DOUBLE_EQ(w.start_rate(), 2000.0);
  // 40 ms (max(40, 2 x 20 ms)) of 1000/s per slot: 40 per slot.
  EXPECT_EQ(w.size(), 80) << "rate " << w.start_rate();
}

TEST(DispatchWindow, QueuePerSlotCoversTwoBatchDelaysAndAtLeastFortyMs) {
  DispatchWindow slow_commits(1000, 50, kTtl);
  slow_commits.heard_from("w1", 2, 0);
  slow_commits.taken(200);
  slow_commits.tick(100);
  EXPECT_EQ(slow_commits.size(), 200) << "100 ms (2 x 50 ms) of 1000/s per slot, 2 slots";

  DispatchWindow fast_commits(1000, 5, kTtl);
  fast_commits.heard_from("w1", 2, 0);
  fast_commits.taken(200);
  fast_commits.tick(100);
  EXPECT_EQ(fast_commits.size(), 80) << "at least 40 ms of 1000/s per slot, 2 slots";

  DispatchWindow capped(50, 20, kTtl);
  capped.heard_from("w1", 2, 0);
  capped.taken(200);
  capped.tick(100);
  EXPECT_EQ(capped.size(), 50) << "capped by --dispatch-window";
}

TEST(DispatchWindow, RateIsMeasuredEveryHundredMs) {
  DispatchWindow w(1000, 20, kTtl);
  w.heard_from("w1", 2, 0);
  w.taken(100);
  w.tick(50);
  w.taken(100);
  w.tick(99);
  EXPECT_DOUBLE_EQ(w.start_rate(), 0.0) << "99 ms: not measured yet";
  EXPECT_EQ(w.size(), 2);
  w.tick(100);
  EXPECT_DOUBLE_EQ(w.start_rate(), 2000.0) << "both halves count: 200 tasks in 100 ms";
  EXPECT_EQ(w.size(), 80);
}

TEST(DispatchWindow, RateRisesAtOnceAndFallsSmoothly) {
  DispatchWindow w(1000, 20, kTtl);
  w.heard_from("w1", 2, 0);
  w.taken(200);
  w.tick(100);
  ASSERT_DOUBLE_EQ(w.start_rate(), 2000.0);
  w.tick(200);  // nothing started in the last 100 ms
  EXPECT_DOUBLE_EQ(w.start_rate(), 1000.0) << "halfway down, not to 0";
  EXPECT_EQ(w.size(), 40) << "20 per slot";
  w.tick(300);
  EXPECT_DOUBLE_EQ(w.start_rate(), 500.0);
  w.taken(600);
  w.tick(400);
  EXPECT_DOUBLE_EQ(w.start_rate(), 6000.0) << "a faster interval is taken at once";
  EXPECT_EQ(w.size(), 240) << "120 per slot";
}

TEST(DispatchWindow, SilentWorkersExpireOnTick) {
  constexpr std::int64_t ttl = 1000;
  DispatchWindow w(1000, 20, ttl);
  w.heard_from("w1", 4, 0);
  w.heard_from("w2", 2, 500);
  w.heard_from("w3", 1, 0);
  ASSERT_EQ(w.size(), 7);
  w.tick(100);
  EXPECT_EQ(w.workers(), 3U) << "all heard from within the TTL";
  w.tick(999);
  EXPECT_EQ(w.workers(), 3U) << "w1 and w3 heard from 999 ms ago, within the TTL";
  w.heard_from("w3", 1, 1050);  // w3 keeps reporting
  w.tick(1100);
  EXPECT_EQ(w.workers(), 2U) << "w1 silent for 1100 ms";
  EXPECT_EQ(w.size(), 3) << "w2 and w3 left";
  const auto left = w.list();
  ASSERT_EQ(left.size(), 2U);
  EXPECT_EQ(left[0].id, "w2");
  EXPECT_EQ(left[1].id, "w3");
  w.tick(1600);
  EXPECT_EQ(w.workers(), 1U) << "w2 silent for 1100 ms";
  w.tick(2100);
  EXPECT_EQ(w.workers(), 0U) << "w3 silent for 1050 ms";
  EXPECT_EQ(w.size(), 8) << "back to the window without workers";
}

TEST(DispatchWindow, SilenceIsNoticedOnlyByTick) {
  DispatchWindow w(1000, 20, 1000);
  w.heard_from("w1", 4, 0);
  w.heard_from("w2", 1, 5000);  // a report, however late, expires nobody
  EXPECT_EQ(w.workers(), 2U);
  EXPECT_EQ(w.size(), 5);
  w.tick(5000);
  EXPECT_EQ(w.workers(), 1U);
  EXPECT_EQ(w.size(), 1);
}

TEST(DispatchWindow, OneTaskPerMessageForSlowTasksMoreForFastOnes) {
  DispatchWindow idle(1000, 20, kTtl);
  idle.heard_from("w1", 1, 0);
  EXPECT_EQ(idle.tasks_per_message(), 1U) << "nothing measured yet";

  DispatchWindow slow(1000, 20, kTtl);
  slow.heard_from("w1", 1, 0);
  slow.taken(10);  // 100/s: a task takes 10 ms
  slow.tick(100);
  EXPECT_EQ(slow.tasks_per_message(), 1U) << "rate " << slow.start_rate();

  DispatchWindow fast(1000, 20, kTtl);
  fast.heard_from("w1", 1, 0);
  fast.taken(1000);  // 10000/s per slot: 2 ms of work is 20 tasks
  fast.tick(100);
  EXPECT_EQ(fast.tasks_per_message(), 20U) << "rate " << fast.start_rate();

  DispatchWindow shared(1000, 20, kTtl);
  shared.heard_from("w1", 4, 0);
  shared.taken(1000);  // the same rate over 4 slots: 2500/s per slot
  shared.tick(100);
  EXPECT_EQ(shared.tasks_per_message(), 5U) << "rate " << shared.start_rate();

  DispatchWindow noop(1000, 20, kTtl);
  noop.heard_from("w1", 1, 0);
  noop.taken(100000);  // 1e6/s per slot
  noop.tick(100);
  EXPECT_EQ(noop.tasks_per_message(), static_cast<std::size_t>(DispatchWindow::kMaxTasksPerMessage))
      << "rate " << noop.start_rate();
  EXPECT_EQ(DispatchWindow::kMaxTasksPerMessage, 64);
}

TEST(DispatchWindow, ListIsSortedByWorkerId) {
  DispatchWindow w(1000, 20, kTtl);
  w.heard_from("c", 1, 10);
  w.heard_from("a", 3, 20);
  w.heard_from("b", 2, 30);
  const auto list = w.list();
  ASSERT_EQ(list.size(), 3U);
  std::vector<std::string> ids;
  for (const auto& seen : list) ids.push_back(seen.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(list[0].slots, 3U);
  EXPECT_EQ(list[0].last_heard_ms, 20);
  EXPECT_EQ(list[1].slots, 2U);
  EXPECT_EQ(list[1].last_heard_ms, 30);
  EXPECT_EQ(list[2].slots, 1U);
  EXPECT_EQ(list[2].last_heard_ms, 10);
}

}  // namespace
}  // namespace topicflow::sink
