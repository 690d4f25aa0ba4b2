// Scheduler: load at start, dispatch from the ready queue, tasks lost in transit. An in-memory
// database with the real schema; rows are written with TopicTable or moved with plain SQL.
#include "scheduler.hpp"

#include "row_id.hpp"
#include "rows_in_flight.hpp"
#include "topic_table.hpp"

#include <topicflow/sink_state.hpp>
#include <topicflow/sqlite.hpp>
#include <topicflow/store.hpp>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace topicflow::sink {
namespace {

using store::Status;

constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();

// Makes the n-th read of a ready row fail (SQLITE_INTERRUPT) while dispatch() runs: a statement
// trace counts the reads and arms a progress handler that interrupts the one running.
struct Interrupter {
  int interrupt_read = 0;  // 1-based; 0: never
  int reads = 0;
  bool armed = false;

  void install(sqlite3* db) {
    sqlite3_trace_v2(db, SQLITE_TRACE_STMT, on_statement, this);
    sqlite3_progress_handler(db, 1, on_progress, this);
  }
  static int on_statement(unsigned /*type*/, void* self, void* /*stmt*/, void* sql) {
    auto& i = *static_cast<Interrupter*>(self);
    const std::string_view text(static_cast<const char*>(sql));
    // (the ready row's read: TopicTable::load_task)
    i.armed = text.starts_with("SELECT job, key, payload") && ++i.reads == i.interrupt_read;
    return 0;
  }
  static int on_progress(void* self) { return static_cast<Interrupter*>(self)->armed ? 1 : 0; }
};

class SchedulerTest : public ::testing::Test {
 protected:
  sqlite::Database db{":memory:"};
  std::optional<TopicTable> table;
  RowsInFlight rows;
  Policy policy{.lease_ms = 1000, .max_attempts = 3, .dispatch_timeout_ms = 5000};
  std::optional<Scheduler> scheduler;
  std::int64_t now = 1'000'000;

  void SetUp() override {
    store::apply_schema(db);
    table.emplace(db);
    scheduler.emplace(*table, rows, policy);
  }

  // A ready row of `job`/`key` due at `due`, written (not queued); returns its rowid.
  std::int64_t insert(const std::string& job, const std::string& key, std::int64_t due) {
    Row row;
    row.exists = true;
    row.status = Status::pending;
    row.due_at = due;
    row.submission = "s1";
    row.new_payload = "payload-" + key;
    row.changed = true;
    sqlite::Transaction tx(db);
    const auto w = table->write(job, key, Row{}, row, now);
    tx.commit();
    EXPECT_EQ(w, TopicTable::Write::written) << job << "/" << key;
    return row.rowid;
  }

  // insert + the scheduler hears of it, as after a commit.
  std::int64_t ready(const std::string& job, const std::string& key, std::int64_t due) {
    const auto rowid = insert(job, key, due);
    scheduler->ready(due, rowid, job);
    return rowid;
  }

  std::vector<std::string> keys(const std::vector<wire::Task>& tasks) {
    std::vector<std::string> out;
    for (const auto& t : tasks) out.push_back(t.job + "/" + t.key);
    return out;
  }

  std::string describe(const std::vector<wire::Task>& tasks) {
    std::string s;
    for (const auto& k : keys(tasks)) s += k + " ";
    return s;
  }
};

TEST_F(SchedulerTest, LoadRebuildsTheReadyQueueAndTheRunningRows) {
  const auto a = insert("j", "a", 100);
  insert("j", "b", 50);
  const auto c = insert("j", "c", 0);
  insert("j", "d", 0);
  insert("j", "e", 0);
  db.exec("UPDATE topics SET status = 'running', attempts = 1, due_at = 900 WHERE key = 'c'");
  db.exec("UPDATE topics SET status = 'completed', due_at = NULL WHERE key = 'd'");
  db.exec("UPDATE topics SET status = 'failed', due_at = NULL WHERE key = 'e'");

  const auto loaded = scheduler->load();
  EXPECT_EQ(loaded.ready, 2U) << "a and b";
  EXPECT_EQ(loaded.running, 1U) << "c";
  EXPECT_EQ(scheduler->queue().size(), 2U);
  EXPECT_EQ(scheduler->next_ready_due(), 50);
  const Row* running = rows.find(row_id("j", "c"));
  ASSERT_NE(running, nullptr) << "a running row is in flight after load";
  EXPECT_EQ(running->rowid, c);
  EXPECT_EQ(running->attempts, 1);
  EXPECT_EQ(rows.next_lease_due(), 900);
  EXPECT_EQ(scheduler->next_timer_due(), 900);
  EXPECT_EQ(rows.in_transit(), 0) << "nothing is in transit after a start";
  EXPECT_EQ(rows.size(), 1U) << "terminal and ready rows are not in flight";

  const auto tasks = scheduler->dispatch(10, 100);
  EXPECT_EQ(keys(tasks), (std::vector<std::string>{"j/b", "j/a"})) << describe(tasks);
  ASSERT_NE(rows.find(row_id("j", "a")), nullptr);
  EXPECT_EQ(rows.find(row_id("j", "a"))->rowid, a);
}

TEST_F(SchedulerTest, DispatchHandsOutAtMostRoomOldestDueFirst) {
  ready("j1", "late", now - 10);
  ready("j2", "early", now - 30);
  ready("j1", "middle", now - 20);
  ready("j2", "same-due-later-row", now - 10);
  ready("j1", "newest", now);

  const auto first = scheduler->dispatch(3, now);
  EXPECT_EQ(keys(first), (std::vector<std::string>{"j2/early", "j1/middle", "j1/late"}))
      << "by (due, rowid) across jobs: " << describe(first);
  EXPECT_EQ(rows.in_transit(), 3);
  EXPECT_EQ(scheduler->queue().size(), 2U);
  const auto rest = scheduler->dispatch(10, now);
  EXPECT_EQ(keys(rest), (std::vector<std::string>{"j2/same-due-later-row", "j1/newest"}))
      << describe(rest);
  EXPECT_EQ(rows.in_transit(), 5);
  EXPECT_TRUE(scheduler->dispatch(10, now).empty()) << "nothing left";
}

TEST_F(SchedulerTest, ADispatchedTaskIsTheNextAttemptInTransitInMemoryOnly) {
  const auto rowid = ready("j", "k", now);
  const auto tasks = scheduler->dispatch(1, now);
  ASSERT_EQ(tasks.size(), 1U);
  EXPECT_EQ(tasks[0].job, "j");
  EXPECT_EQ(tasks[0].key, "k");
  EXPECT_EQ(tasks[0].payload, "payload-k");
  EXPECT_EQ(tasks[0].attempt, 1U);

  const Row* cached = rows.find(row_id("j", "k"));
  ASSERT_NE(cached, nullptr);
  EXPECT_TRUE(cached->in_transit());
  EXPECT_EQ(cached->attempts, 1);
  EXPECT_EQ(cached->sent_at, now);
  EXPECT_EQ(cached->due_at, now + policy.dispatch_timeout_ms) << "the dispatch timeout";
  EXPECT_EQ(cached->rowid, rowid);
  EXPECT_EQ(rows.oldest_transit_sent(), now);
  EXPECT_EQ(scheduler->next_timer_due(), now + policy.dispatch_timeout_ms);

  const Row stored = table->load("j", "k");
  EXPECT_EQ(stored.status, Status::pending) << "handing a task out writes nothing";
  EXPECT_EQ(stored.attempts, 0);
  EXPECT_EQ(stored.due_at, now);
}

TEST_F(SchedulerTest, AnAttemptGivenBackGoesOutBeforeTheBacklogAlsoAfterARestart) {
  for (int i = 0; i < 5; ++i) ready("j", "backlog" + std::to_string(i), now - 1000 + i);
  // (the state machine's due time for a released attempt or an expired lease)
  ready("j", "given-back", kDueAtOnce);
  EXPECT_EQ(keys(scheduler->dispatch(1, now)), std::vector<std::string>{"j/given-back"});

  // A sink started on the same table rebuilds the queue from the rows' due_at: same order (the
  // task in transit above is ready in the table, so the new sink sends it again).
  insert("j", "given-back-2", kDueAtOnce);
  RowsInFlight fresh_rows;
  Scheduler fresh(*table, fresh_rows, policy);
  (void)fresh.load();
  const auto tasks = fresh.dispatch(3, now);
  EXPECT_EQ(keys(tasks), (std::vector<std::string>{"j/given-back", "j/given-back-2", "j/backlog0"}))
      << describe(tasks);
}

TEST_F(SchedulerTest, DispatchLeavesRowsDueLaterThanNow) {
  ready("j", "soon", now + 100);
  EXPECT_TRUE(scheduler->dispatch(10, now).empty()) << "due in 100 ms";
  EXPECT_EQ(scheduler->queue().size(), 1U) << "still queued";
  EXPECT_EQ(scheduler->next_ready_due(), now + 100);
  EXPECT_EQ(scheduler->dispatch(10, now + 100).size(), 1U) << "due now";
}

TEST_F(SchedulerTest, NoRoomNoDispatch) {
  ready("j", "k", now);
  EXPECT_TRUE(scheduler->dispatch(0, now).empty());
  EXPECT_TRUE(scheduler->dispatch(-3, now).empty()) << "more in transit than the window";
  EXPECT_EQ(scheduler->queue().size(), 1U) << "nothing popped";
  EXPECT_EQ(rows.in_transit(), 0);
}

TEST_F(SchedulerTest, EntriesOfRowsNoLongerReadyAreDroppedWithoutTakingRoom) {
  ready("j", "adopted", now - 3);
  ready("j", "completed", now - 2);
  ready("j", "deleted", now - 1);
  ready("j", "fine", now);
  db.exec("UPDATE topics SET status = 'running', attempts = 1, due_at = 1 WHERE key = 'adopted'");
  db.exec("UPDATE topics SET status = 'completed', due_at = NULL WHERE key = 'completed'");
  db.exec("DELETE FROM topics WHERE key = 'deleted'");

  const auto tasks = scheduler->dispatch(1, now);
  EXPECT_EQ(keys(tasks), std::vector<std::string>{"j/fine"}) << describe(tasks);
  EXPECT_EQ(scheduler->queue().size(), 0U) << "the stale entries are gone";
  EXPECT_EQ(rows.size(), 1U) << "only the task handed out is in flight";
}

TEST_F(SchedulerTest, AnEntryOfARescheduledRowWaitsForItsLaterEntry) {
  const auto rowid = ready("j", "k", now);
  db.exec("UPDATE topics SET due_at = " + std::to_string(now + 500) + " WHERE key = 'k'");
  scheduler->ready(now + 500, rowid, "j");  // the write that rescheduled it queues it again

  EXPECT_TRUE(scheduler->dispatch(10, now).empty()) << "the row is due at now + 500";
  EXPECT_EQ(scheduler->queue().size(), 1U) << "the early entry is dropped, the later one kept";
  const auto tasks = scheduler->dispatch(10, now + 500);
  EXPECT_EQ(keys(tasks), std::vector<std::string>{"j/k"});
}

TEST_F(SchedulerTest, AnEntryPushedTwiceIsHandedOutOnce) {
  const auto rowid = ready("j", "k", now);
  scheduler->ready(now, rowid, "j");
  const auto tasks = scheduler->dispatch(10, now);
  EXPECT_EQ(keys(tasks), std::vector<std::string>{"j/k"}) << describe(tasks);
  EXPECT_EQ(rows.in_transit(), 1);
  EXPECT_EQ(scheduler->queue().size(), 0U);
}

TEST_F(SchedulerTest, AnEntryOfARowAlreadyInTransitIsSkipped) {
  const auto rowid = ready("j", "k", now);
  ASSERT_EQ(scheduler->dispatch(10, now).size(), 1U);
  scheduler->ready(now, rowid, "j");  // e.g. a hint from a commit racing the dispatch
  EXPECT_TRUE(scheduler->dispatch(10, now + 1).empty()) << "still in transit: not sent twice";
  EXPECT_EQ(rows.find(row_id("j", "k"))->sent_at, now) << "the first dispatch is kept";
}

// The stall: a dead worker's queue held several tasks, sent a few ms apart. Each was
// presumed lost in a round of its own, and each round doubled the timeout: the last waited
// 4 + 8 + 16 + 32 s while they filled the dispatch window. A first loss is no wrong guess: all
// of them are sent again after the same timeout; only tasks lost again back off, once per round.
TEST_F(SchedulerTest, TasksLostTogetherAreAllSentAgainAfterTheSameTimeout) {
  for (int i = 0; i < 6; ++i) ready("j", "k" + std::to_string(i), now);
  for (int i = 0; i < 6; ++i) ASSERT_EQ(scheduler->dispatch(1, now + 10 * i).size(), 1U) << i;
  // A clean sample: the timeout is the estimate (the floor), not the cap.
  ready("j", "fast", now);
  ASSERT_EQ(scheduler->dispatch(1, now).size(), 1U);
  scheduler->started_after(rows.find(row_id("j", "fast"))->rowid, 10);
  rows.put(row_id("j", "fast"), std::nullopt);  // (it started: no longer in transit)
  const auto timeout = scheduler->transit_timeout().ms();
  ASSERT_LT(timeout, policy.dispatch_timeout_ms);

  std::size_t forgotten = 0;
  for (int i = 0; i < 6; ++i) forgotten += scheduler->forget_transit(now + timeout + 10 * i);
  EXPECT_EQ(forgotten, 6U) << "each one timeout after it was sent";
  EXPECT_EQ(scheduler->transit_timeout().ms(), timeout) << "a first loss does not back off";

  // Sent again, and lost again (a second dead worker): now the guess was short. One doubling.
  const auto again = now + 2 * timeout;
  ASSERT_EQ(scheduler->dispatch(10, again).size(), 6U);
  for (int i = 0; i < 6; ++i) forgotten += scheduler->forget_transit(again + timeout + i);
  EXPECT_EQ(forgotten, 12U);
  EXPECT_EQ(scheduler->transit_timeout().ms(), 2 * timeout) << "one round, one doubling";
}

TEST_F(SchedulerTest, ForgottenTasksInTransitAreSentAgainWithTheSameAttempt) {
  ready("j", "a", now);
  ready("j", "b", now + 10);
  ASSERT_EQ(scheduler->dispatch(1, now).size(), 1U);
  ASSERT_EQ(scheduler->dispatch(1, now + 10).size(), 1U);
  ASSERT_EQ(rows.in_transit(), 2);

  EXPECT_EQ(scheduler->forget_transit(now + policy.dispatch_timeout_ms - 1), 0U)
      << "no dispatch timeout has passed";
  EXPECT_EQ(scheduler->forget_transit(now + policy.dispatch_timeout_ms), 1U) << "a's timed out";
  EXPECT_EQ(rows.in_transit(), 1);
  EXPECT_EQ(rows.find(row_id("j", "a")), nullptr);
  EXPECT_EQ(scheduler->next_ready_due(), now) << "queued again, due when it was sent";

  const auto later = now + policy.dispatch_timeout_ms;
  const auto resent = scheduler->dispatch(10, later);
  ASSERT_EQ(resent.size(), 1U) << describe(resent);
  EXPECT_EQ(resent[0].key, "a");
  EXPECT_EQ(resent[0].attempt, 1U) << "the same attempt again";
  EXPECT_EQ(rows.find(row_id("j", "a"))->due_at, later + policy.dispatch_timeout_ms);

  EXPECT_EQ(scheduler->forget_transit(kNever), 2U) << "a new broker: every task in transit";
  EXPECT_EQ(rows.in_transit(), 0);
  const auto all = scheduler->dispatch(10, later);
  EXPECT_EQ(keys(all), (std::vector<std::string>{"j/b", "j/a"}))
      << "b was due first (a's entry is due when it was last sent): " << describe(all);
  for (const auto& t : all) EXPECT_EQ(t.attempt, 1U) << t.key;
}

TEST_F(SchedulerTest, ARetriedRowIsHandedOutWithTheNextAttempt) {
  const auto rowid = insert("j", "k", now);
  db.exec("UPDATE topics SET attempts = 2, error = 'flaky' WHERE key = 'k'");
  scheduler->ready(now, rowid, "j");
  const auto tasks = scheduler->dispatch(1, now);
  ASSERT_EQ(tasks.size(), 1U);
  EXPECT_EQ(tasks[0].attempt, 3U) << "attempts + 1";
  EXPECT_EQ(rows.find(row_id("j", "k"))->attempts, 3);
}

TEST_F(SchedulerTest, APausedJobIsNotDispatchedUntilResumed) {
  ready("paused", "k", now - 10);
  ready("other", "k", now);
  scheduler->queue().pause("paused");
  const auto tasks = scheduler->dispatch(10, now);
  EXPECT_EQ(keys(tasks), std::vector<std::string>{"other/k"}) << describe(tasks);
  EXPECT_EQ(scheduler->queue().size(), 1U) << "set aside, not dropped";
  scheduler->queue().resume("paused");
  EXPECT_EQ(keys(scheduler->dispatch(10, now)), std::vector<std::string>{"paused/k"});
}

TEST_F(SchedulerTest, NextTimerDueIsTheEarlierOfLeasesAndDispatchTimeouts) {
  EXPECT_FALSE(scheduler->next_timer_due()) << "nothing in flight";
  ready("j", "k", now);
  ASSERT_EQ(scheduler->dispatch(1, now).size(), 1U);
  EXPECT_EQ(scheduler->next_timer_due(), now + policy.dispatch_timeout_ms);
  Row running;
  running.exists = true;
  running.status = Status::running;
  running.attempts = 1;
  running.due_at = now + 10;
  running.rowid = 99;
  rows.put(row_id("j", "r"), running);
  EXPECT_EQ(scheduler->next_timer_due(), now + 10) << "the lease is earlier";
}

TEST_F(SchedulerTest, AnUnreadableDatabasePutsThePoppedEntriesBack) {
  ready("j", "a", now);
  ready("j", "b", now);
  db.exec("DROP TABLE topics");
  EXPECT_THROW((void)scheduler->dispatch(10, now), sqlite::SqliteError);
  EXPECT_EQ(scheduler->queue().size(), 2U) << "every entry popped is queued again";
  EXPECT_EQ(rows.in_transit(), 0) << "nothing was sent";
  EXPECT_EQ(rows.size(), 0U);
}

TEST_F(SchedulerTest, AReadErrorMidwayTakesBackTheTasksOfThatRound) {
  ready("j", "a", now - 2);
  ready("j", "b", now - 1);
  ready("j", "c", now);
  Interrupter interrupter;
  interrupter.install(db.handle());
  interrupter.interrupt_read = 2;  // a is read and put in transit, then reading b fails
  EXPECT_THROW((void)scheduler->dispatch(10, now), sqlite::SqliteError);
  EXPECT_EQ(interrupter.reads, 2) << "the error came with the second row";
  EXPECT_EQ(rows.in_transit(), 0) << "a was never sent: it must not stay in transit";
  EXPECT_EQ(rows.find(row_id("j", "a")), nullptr);
  EXPECT_EQ(scheduler->queue().size(), 3U) << "a and b queued again, c never popped";

  interrupter.interrupt_read = 0;
  const auto tasks = scheduler->dispatch(10, now);
  EXPECT_EQ(keys(tasks), (std::vector<std::string>{"j/a", "j/b", "j/c"})) << describe(tasks);
  for (const auto& t : tasks) EXPECT_EQ(t.attempt, 1U) << t.key << ": the first attempt still";
}

}  // namespace
}  // namespace topicflow::sink
