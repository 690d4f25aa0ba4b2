// TopicTable: the sink's row SQL over an in-memory database with the real schema. Rows are
// moved "behind the table's back" with plain SQL to prove the guard refuses on its own.
#include "topic_table.hpp"

#include <topicflow/backoff.hpp>
#include <topicflow/sink_state.hpp>
#include <topicflow/sqlite.hpp>
#include <topicflow/store.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace topicflow::sink {
namespace {

using store::Status;
using Write = TopicTable::Write;
using Narrow = TopicTable::Narrow;

const char* name(Write w) {
  switch (w) {
    case Write::written: return "written";
    case Write::exists: return "exists";
    case Write::refused: return "refused";
  }
  return "?";
}

const char* name(Narrow n) {
  switch (n) {
    case Narrow::none: return "none";
    case Narrow::run: return "run";
    case Narrow::complete: return "complete";
  }
  return "?";
}

// A row as the database has it, read with plain SQL.
struct Stored {
  std::string status;
  std::int64_t attempts = 0;
  std::optional<std::int64_t> due_at;
  std::optional<std::string> error;
  std::optional<std::string> payload;
  std::optional<std::string> result;
  std::string submission;
  std::string worker;
  std::int64_t updated_at = 0;
  std::int64_t created_at = 0;
  std::int64_t rowid = 0;
};

class TopicTableTest : public ::testing::Test {
 protected:
  sqlite::Database db{":memory:"};
  TopicTable* table = nullptr;
  Policy policy{.lease_ms = 1000, .max_attempts = 3, .dispatch_timeout_ms = 5000};
  Backoff backoff{100, 1000, 42};
  std::int64_t now = 1'000'000;

  void SetUp() override {
    store::apply_schema(db);
    table_.emplace(db);
    table = &*table_;
  }

  // Writes inside a transaction, as the sink does.
  Write write(std::string_view job, std::string_view key, const Row& before, Row& row) {
    sqlite::Transaction tx(db);
    const auto w = table->write(job, key, before, row, now);
    tx.commit();
    return w;
  }

  // The row a submit makes (not written yet).
  Row submitted(std::string_view submission = "s1", std::string payload = "payload") {
    Row row;
    const auto o =
        apply(row, Event{.kind = EventKind::submit, .data = payload, .origin = submission}, policy,
              backoff, now);
    EXPECT_EQ(o, Outcome::accepted);
    return row;
  }

  // Registers job/key and returns the row as the sink then knows it.
  Row insert(std::string_view job, std::string_view key, std::string payload = "payload") {
    Row row = submitted("s1", std::move(payload));
    const auto w = write(job, key, Row{}, row);
    EXPECT_EQ(w, Write::written) << job << "/" << key << ": " << name(w);
    row.changed = false;
    row.new_payload.reset();
    return row;
  }

  // `ready` handed out (in transit, in memory only).
  Row sent(Row ready) {
    const auto r = on_due(ready, policy, now);
    EXPECT_TRUE(r.dispatch);
    ready.changed = false;
    return ready;
  }

  Row report(Row row, EventKind kind, std::uint32_t attempt, std::string data = {}) {
    row.changed = false;
    (void)apply(row,
                Event{.kind = kind, .attempt = attempt, .data = std::move(data), .origin = "w1"},
                policy, backoff, now);
    return row;
  }

  Stored stored(std::string_view job, std::string_view key) {
    auto q = db.prepare(
        "SELECT status, attempts, due_at, error, payload, result, submission, worker, updated_at, "
        "created_at, rowid FROM topics WHERE job = ?1 AND key = ?2");
    q.bind(1, job).bind(2, key);
    Stored s;
    EXPECT_TRUE(q.step()) << "no row " << job << "/" << key;
    s.status = std::string(q.column_text(0));
    s.attempts = q.column_int(1);
    if (!q.is_null(2)) s.due_at = q.column_int(2);
    if (!q.is_null(3)) s.error = std::string(q.column_text(3));
    if (!q.is_null(4)) s.payload = std::string(q.column_blob(4));
    if (!q.is_null(5)) s.result = std::string(q.column_blob(5));
    s.submission = std::string(q.column_text(6));
    s.worker = std::string(q.column_text(7));
    s.updated_at = q.column_int(8);
    s.created_at = q.column_int(9);
    s.rowid = q.column_int(10);
    return s;
  }

 private:
  std::optional<TopicTable> table_;
};

TEST_F(TopicTableTest, ANewTopicIsInsertedAndGetsItsRowid) {
  Row row = submitted("s1", "the payload");
  EXPECT_EQ(write("j", "k", Row{}, row), Write::written);
  EXPECT_GT(row.rowid, 0) << "the INSERT sets the rowid";
  const auto s = stored("j", "k");
  EXPECT_EQ(s.rowid, row.rowid);
  EXPECT_EQ(s.status, "pending");
  EXPECT_EQ(s.attempts, 0);
  EXPECT_EQ(s.due_at, now);
  EXPECT_EQ(s.payload, "the payload");
  EXPECT_EQ(s.submission, "s1");
  EXPECT_EQ(s.created_at, now);
  EXPECT_EQ(s.updated_at, now);
  EXPECT_FALSE(s.error);
  EXPECT_FALSE(s.result);

  const Row loaded = table->load("j", "k");
  EXPECT_TRUE(loaded.exists);
  EXPECT_EQ(loaded.rowid, row.rowid);
  EXPECT_EQ(loaded.status, Status::pending);
  EXPECT_EQ(loaded.attempts, 0);
  EXPECT_EQ(loaded.due_at, now);
  EXPECT_EQ(loaded.submission, "s1");
  EXPECT_FALSE(loaded.sent_at) << "in transit is never read from the database";
}

TEST_F(TopicTableTest, InsertingATopicThatExistsChangesNothing) {
  const Row first = insert("j", "k", "first");
  Row again = submitted("s2", "second");
  now += 10;
  EXPECT_EQ(write("j", "k", Row{}, again), Write::exists)
      << "`before` said no row, the INSERT found one";
  EXPECT_EQ(again.rowid, 0) << "no rowid for a row not inserted";
  const auto s = stored("j", "k");
  EXPECT_EQ(s.payload, "first");
  EXPECT_EQ(s.submission, "s1");
  EXPECT_EQ(s.updated_at, now - 10);
  EXPECT_EQ(s.rowid, first.rowid);
}

TEST_F(TopicTableTest, LoadOfAMissingTopicSaysThereIsNone) {
  (void)insert("j", "k");
  EXPECT_FALSE(table->load("j", "other").exists);
  EXPECT_FALSE(table->load("other", "k").exists);
}

TEST_F(TopicTableTest, AnAttemptsFirstReportIsANarrowWrite) {
  Row ready;
  ready.exists = true;
  ready.due_at = now;
  ready.submission = "s1";
  ready.rowid = 1;
  const Row transit = sent(ready);
  const Row started = report(transit, EventKind::started, 1);
  EXPECT_EQ(TopicTable::narrow_write(transit, started), Narrow::run) << "started";
  const Row beat = report(started, EventKind::heartbeat, 1);
  EXPECT_EQ(TopicTable::narrow_write(started, beat), Narrow::run) << "heartbeat";
  const Row done = report(transit, EventKind::completed, 1, "result");
  EXPECT_EQ(TopicTable::narrow_write(transit, done), Narrow::complete) << "completed at once";
  const Row done_later = report(started, EventKind::completed, 1, "result");
  EXPECT_EQ(TopicTable::narrow_write(started, done_later), Narrow::complete) << "completed";
}

TEST_F(TopicTableTest, EveryOtherChangeIsAGenericWrite) {
  Row ready;
  ready.exists = true;
  ready.due_at = now;
  ready.submission = "s1";
  ready.rowid = 1;
  const Row transit = sent(ready);
  const Row started = report(transit, EventKind::started, 1);

  auto expect_none = [&](const Row& before, const Row& row, const char* what) {
    const auto n = TopicTable::narrow_write(before, row);
    EXPECT_EQ(n, Narrow::none) << what << ": " << name(n);
  };
  expect_none(Row{}, submitted(), "an insert");
  Row retried = started;
  (void)apply(retried,
              Event{.kind = EventKind::failed, .attempt = 1, .retryable = true, .origin = "w1"},
              policy, backoff, now);
  ASSERT_EQ(retried.status, Status::pending);
  expect_none(started, retried, "a retry");
  expect_none(started, report(started, EventKind::failed, 1, "boom"), "a failure");
  expect_none(started, report(started, EventKind::released, 1), "a release");

  Row with_error = started;  // a retried row's error stays until the next attempt writes
  with_error.error = "old error";
  Row run_clearing_error = report(with_error, EventKind::heartbeat, 1);
  run_clearing_error.error.reset();
  expect_none(with_error, run_clearing_error, "running that changes the error");
  Row completed_with_error = report(started, EventKind::completed, 1, "r");
  completed_with_error.error = "kept";
  expect_none(started, completed_with_error, "completed keeping an error");

  Row lower = report(started, EventKind::heartbeat, 1);
  lower.attempts = 0;
  expect_none(started, lower, "attempts going down");
  Row next_attempt = report(started, EventKind::heartbeat, 1);
  next_attempt.attempts = 2;
  expect_none(started, next_attempt, "another attempt than the one handed out");
  Row resubmitted = report(started, EventKind::heartbeat, 1);
  resubmitted.submission = "s2";
  expect_none(started, resubmitted, "a new submission");
  Row new_payload = report(started, EventKind::heartbeat, 1);
  new_payload.new_payload = "p";
  expect_none(started, new_payload, "a new payload");
  Row requeued = report(started, EventKind::heartbeat, 1);
  requeued.requeued = true;
  expect_none(started, requeued, "a requeue");
  Row in_transit = report(started, EventKind::heartbeat, 1);
  in_transit.sent_at = now;
  expect_none(started, in_transit, "in transit");
  Row failed = started;
  failed.status = Status::failed;
  expect_none(failed, report(started, EventKind::heartbeat, 1), "from a terminal row");
}

TEST_F(TopicTableTest, TheNarrowRunWritesAttemptLeaseAndWorker) {
  const Row ready = insert("j", "k", "p");
  const Row transit = sent(ready);
  now += 7;
  Row started = report(transit, EventKind::started, 1);
  ASSERT_EQ(TopicTable::narrow_write(transit, started), Narrow::run);
  EXPECT_EQ(write("j", "k", transit, started), Write::written);
  const auto s = stored("j", "k");
  EXPECT_EQ(s.status, "running");
  EXPECT_EQ(s.attempts, 1) << "the attempt handed out is written with its first report";
  EXPECT_EQ(s.due_at, now + policy.lease_ms);
  EXPECT_EQ(s.worker, "w1");
  EXPECT_EQ(s.updated_at, now);
  EXPECT_EQ(s.payload, "p") << "untouched";
  EXPECT_EQ(s.submission, "s1") << "untouched";
}

TEST_F(TopicTableTest, TheNarrowCompleteWritesTheResultAndClearsTheError) {
  const Row ready = insert("j", "k");
  db.exec("UPDATE topics SET error = 'attempt 1 failed', attempts = 1 WHERE key = 'k'");
  Row retried = table->load("j", "k");
  ASSERT_EQ(retried.error, "attempt 1 failed");
  const Row transit = sent(retried);
  ASSERT_EQ(transit.attempts, 2);
  Row done = report(transit, EventKind::completed, 2, "the result");
  ASSERT_EQ(TopicTable::narrow_write(transit, done), Narrow::complete);
  EXPECT_EQ(write("j", "k", transit, done), Write::written);
  const auto s = stored("j", "k");
  EXPECT_EQ(s.status, "completed");
  EXPECT_EQ(s.attempts, 2);
  EXPECT_EQ(s.result, "the result");
  EXPECT_FALSE(s.error) << "a completed row carries no error";
  EXPECT_FALSE(s.due_at) << "a terminal row has no timer";
  EXPECT_EQ(s.worker, "w1");
  EXPECT_EQ(s.rowid, ready.rowid);
}

TEST_F(TopicTableTest, TheGuardRefusesMovingACompletedRow) {
  const Row ready = insert("j", "k");
  const Row transit = sent(ready);
  db.exec("UPDATE topics SET status = 'completed', attempts = 1, due_at = NULL, result = 'r'");

  Row started = report(transit, EventKind::started, 1);
  ASSERT_EQ(TopicTable::narrow_write(transit, started), Narrow::run);
  EXPECT_EQ(write("j", "k", transit, started), Write::refused) << "narrow run";
  Row done = report(transit, EventKind::completed, 1, "other");
  ASSERT_EQ(TopicTable::narrow_write(transit, done), Narrow::complete);
  EXPECT_EQ(write("j", "k", transit, done), Write::refused) << "narrow complete";
  Row released = report(started, EventKind::released, 1);
  ASSERT_EQ(TopicTable::narrow_write(started, released), Narrow::none);
  EXPECT_EQ(write("j", "k", started, released), Write::refused) << "generic update";
  Row requeued = released;
  requeued.requeued = true;
  requeued.attempts = 0;
  EXPECT_EQ(write("j", "k", started, requeued), Write::refused)
      << "a requeue resets failed rows only";

  const auto s = stored("j", "k");
  EXPECT_EQ(s.status, "completed");
  EXPECT_EQ(s.attempts, 1);
  EXPECT_EQ(s.result, "r");
  EXPECT_FALSE(s.due_at);
}

TEST_F(TopicTableTest, TheGuardRefusesLoweringAttempts) {
  const Row ready = insert("j", "k");
  const Row transit = sent(ready);  // attempt 1
  db.exec("UPDATE topics SET status = 'running', attempts = 3, due_at = 5");

  Row started = report(transit, EventKind::started, 1);
  EXPECT_EQ(write("j", "k", transit, started), Write::refused) << "narrow run of attempt 1";
  Row released = report(started, EventKind::released, 1);
  EXPECT_EQ(write("j", "k", started, released), Write::refused) << "generic update to attempt 1";
  auto s = stored("j", "k");
  EXPECT_EQ(s.status, "running");
  EXPECT_EQ(s.attempts, 3);
  EXPECT_EQ(s.due_at, 5);

  Row same = released;
  same.attempts = 3;
  EXPECT_EQ(write("j", "k", started, same), Write::written) << "attempts equal: allowed";
  s = stored("j", "k");
  EXPECT_EQ(s.status, "pending");
  EXPECT_EQ(s.attempts, 3);
}

TEST_F(TopicTableTest, TheGuardRefusesChangingAFailedRowExceptByRequeue) {
  const Row ready = insert("j", "k", "old payload");
  db.exec("UPDATE topics SET status = 'failed', attempts = 3, due_at = NULL, error = 'boom'");
  Row failed = table->load("j", "k");

  Row released = failed;
  released.status = Status::pending;
  released.due_at = now;
  released.changed = true;
  EXPECT_EQ(write("j", "k", failed, released), Write::refused) << "failed -> pending, no requeue";
  EXPECT_EQ(stored("j", "k").status, "failed");

  Row requeued = failed;
  const auto o = apply(
      requeued,
      Event{
          .kind = EventKind::submit, .requeue_failed = true, .data = "new payload", .origin = "s2"},
      policy, backoff, now);
  ASSERT_EQ(o, Outcome::requeued);
  EXPECT_EQ(write("j", "k", failed, requeued), Write::written);
  const auto s = stored("j", "k");
  EXPECT_EQ(s.status, "pending");
  EXPECT_EQ(s.attempts, failed.attempts) << "attempt numbers never go back";
  EXPECT_EQ(s.payload, "new payload");
  EXPECT_EQ(s.submission, "s2");
  EXPECT_EQ(s.due_at, now);
  EXPECT_EQ(s.rowid, ready.rowid);
}

TEST_F(TopicTableTest, AWriteByARowidOfAnotherTopicIsRefused) {
  // e.g. rows deleted by hand and a rowid reused: the write must never land on another topic
  const Row a = insert("j", "a");
  const Row b = insert("j", "b");
  ASSERT_NE(a.rowid, b.rowid);
  Row wrong = b;
  wrong.rowid = a.rowid;

  Row released = wrong;
  released.attempts = 1;
  released.error = "x";
  released.changed = true;
  ASSERT_EQ(TopicTable::narrow_write(wrong, released), Narrow::none);
  EXPECT_EQ(write("j", "b", wrong, released), Write::refused) << "generic update";

  const Row transit = sent(wrong);
  Row started = report(transit, EventKind::started, 1);
  ASSERT_EQ(TopicTable::narrow_write(transit, started), Narrow::run);
  EXPECT_EQ(write("j", "b", transit, started), Write::refused) << "narrow run";
  Row done = report(transit, EventKind::completed, 1, "r");
  ASSERT_EQ(TopicTable::narrow_write(transit, done), Narrow::complete);
  EXPECT_EQ(write("j", "b", transit, done), Write::refused) << "narrow complete";

  for (const char* key : {"a", "b"}) {
    const auto s = stored("j", key);
    EXPECT_EQ(s.status, "pending") << "j/" << key << " untouched";
    EXPECT_EQ(s.attempts, 0) << "j/" << key;
    EXPECT_FALSE(s.error) << "j/" << key;
    EXPECT_FALSE(s.result) << "j/" << key;
  }
}

TEST_F(TopicTableTest, TheGenericUpdateKeepsPayloadAndResultUnlessSet) {
  const Row ready = insert("j", "k", "p1");
  const Row transit = sent(ready);
  const Row started = report(transit, EventKind::started, 1);
  Row running = started;
  ASSERT_EQ(write("j", "k", transit, running), Write::written);
  db.exec("UPDATE topics SET result = 'partial' WHERE key = 'k'");  // only to see it kept
  Row failed = report(started, EventKind::failed, 1, "boom");
  ASSERT_EQ(failed.status, Status::failed);
  ASSERT_FALSE(failed.new_result);
  ASSERT_EQ(TopicTable::narrow_write(started, failed), Narrow::none);
  EXPECT_EQ(write("j", "k", started, failed), Write::written);
  const auto s = stored("j", "k");
  EXPECT_EQ(s.status, "failed");
  EXPECT_EQ(s.error, "boom");
  EXPECT_FALSE(s.due_at);
  EXPECT_EQ(s.payload, "p1") << "no new payload: kept";
  EXPECT_EQ(s.result, "partial") << "no new result: kept";
}

TEST_F(TopicTableTest, TheGenericUpdateWritesANewResult) {
  // completed from a ready row (its attempt adopted): not the narrow complete
  const Row ready = insert("j", "k");
  Row done = report(ready, EventKind::completed, 1, "the result");
  ASSERT_EQ(done.status, Status::completed);
  ASSERT_EQ(TopicTable::narrow_write(ready, done), Narrow::none);
  EXPECT_EQ(write("j", "k", ready, done), Write::written);
  const auto s = stored("j", "k");
  EXPECT_EQ(s.status, "completed");
  EXPECT_EQ(s.attempts, 1);
  EXPECT_EQ(s.result, "the result");
  EXPECT_FALSE(s.due_at);
}

TEST_F(TopicTableTest, RequeueFailedReturnsTheRowidsOfThatJobsFailedRows) {
  const Row a1 = insert("a", "1");
  (void)insert("a", "2");
  const Row a3 = insert("a", "3");
  (void)insert("b", "1");
  db.exec(
      "UPDATE topics SET status = 'failed', attempts = 3, due_at = NULL, error = 'e' "
      "WHERE (job = 'a' AND key IN ('1', '3')) OR job = 'b'");
  now += 50;
  std::vector<std::int64_t> rowids;
  {
    sqlite::Transaction tx(db);
    rowids = table->requeue_failed("a", now);
    tx.commit();
  }
  std::sort(rowids.begin(), rowids.end());
  std::vector<std::int64_t> expected{a1.rowid, a3.rowid};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(rowids, expected);
  for (const char* key : {"1", "3"}) {
    const auto s = stored("a", key);
    EXPECT_EQ(s.status, "pending") << "a/" << key;
    EXPECT_EQ(s.attempts, 3) << "a/" << key << ": attempt numbers never go back";
    EXPECT_EQ(s.due_at, now) << "a/" << key;
    EXPECT_EQ(s.updated_at, now) << "a/" << key;
  }
  EXPECT_EQ(stored("a", "2").status, "pending");
  EXPECT_EQ(stored("a", "2").updated_at, now - 50) << "not failed: untouched";
  EXPECT_EQ(stored("b", "1").status, "failed") << "another job";
  EXPECT_TRUE(table->requeue_failed("a", now).empty()) << "nothing failed is left";
}

TEST_F(TopicTableTest, LoadTaskReadsTheRowAndItsPayloadByRowid) {
  const std::string payload("bin\0ary\xff", 8);
  const Row row = insert("j", "k", payload);
  const auto task = table->load_task(row.rowid);
  ASSERT_TRUE(task);
  EXPECT_EQ(task->job, "j");
  EXPECT_EQ(task->key, "k");
  EXPECT_EQ(task->payload, payload) << "binary payload, NUL included";
  EXPECT_TRUE(task->row.exists);
  EXPECT_EQ(task->row.rowid, row.rowid);
  EXPECT_EQ(task->row.status, Status::pending);
  EXPECT_EQ(task->row.attempts, 0);
  EXPECT_EQ(task->row.due_at, now);
  EXPECT_EQ(task->row.submission, "s1");
  EXPECT_FALSE(table->load_task(row.rowid + 100)) << "no such rowid";
}

TEST_F(TopicTableTest, ScanUnfinishedVisitsPendingAndRunningRowsOnly) {
  const Row pending = insert("j", "pending");
  const Row running = insert("j", "running");
  (void)insert("j", "completed");
  (void)insert("j", "failed");
  db.exec("UPDATE topics SET status = 'running', attempts = 1, due_at = 77 WHERE key = 'running'");
  db.exec("UPDATE topics SET status = 'completed', due_at = NULL WHERE key = 'completed'");
  db.exec("UPDATE topics SET status = 'failed', due_at = NULL WHERE key = 'failed'");

  std::vector<std::string> keys;
  table->scan_unfinished([&](std::string_view job, std::string_view key, const Row& row) {
    EXPECT_EQ(job, "j");
    keys.emplace_back(key);
    if (key == "pending") {
      EXPECT_EQ(row.status, Status::pending);
      EXPECT_EQ(row.due_at, now);
      EXPECT_EQ(row.rowid, pending.rowid);
    } else if (key == "running") {
      EXPECT_EQ(row.status, Status::running);
      EXPECT_EQ(row.attempts, 1);
      EXPECT_EQ(row.due_at, 77);
      EXPECT_EQ(row.rowid, running.rowid);
    }
  });
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys, (std::vector<std::string>{"pending", "running"}));
}

TEST_F(TopicTableTest, MetaValuesAreSetAndReplaced) {
  EXPECT_FALSE(table->meta("broker_instance")) << "not set yet";
  table->set_meta("broker_instance", "b1");
  EXPECT_EQ(table->meta("broker_instance"), "b1");
  table->set_meta("broker_instance", "b2");
  EXPECT_EQ(table->meta("broker_instance"), "b2") << "replaced, not added";
  EXPECT_EQ(table->meta("schema_version"), std::to_string(store::kSchemaVersion));
}

}  // namespace
}  // namespace topicflow::sink
