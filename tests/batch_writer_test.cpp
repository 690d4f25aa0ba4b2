// BatchWriter: one commit's row work over an in-memory database with the real schema. Each test
// commits batches the way the sink does (apply inside a transaction, then the rows in flight
// take the staged cache changes) and checks the rows and the Effects.
#include "batch_writer.hpp"

#include "batch.hpp"
#include "effects.hpp"
#include "row_id.hpp"
#include "rows_in_flight.hpp"
#include "topic_table.hpp"

#include <topicflow/backoff.hpp>
#include <topicflow/sink_state.hpp>
#include <topicflow/sqlite.hpp>
#include <topicflow/store.hpp>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace topicflow::sink {
namespace {

using store::Status;

// sqlite3_trace_v2 callback: counts the statements run that read rows.
int count_select(unsigned /*type*/, void* counter, void* /*stmt*/, void* sql) {
  if (std::string_view(static_cast<const char*>(sql)).starts_with("SELECT")) {
    ++*static_cast<int*>(counter);
  }
  return 0;
}

class BatchWriterTest : public ::testing::Test {
 protected:
  sqlite::Database db{":memory:"};
  std::optional<TopicTable> table;
  RowsInFlight rows;
  Policy policy{.lease_ms = 1000, .max_attempts = 3, .dispatch_timeout_ms = 5000};
  Backoff backoff{100, 1000, 42};
  std::optional<BatchWriter> writer;
  std::int64_t now = 1'000'000;

  void SetUp() override {
    store::apply_schema(db);
    table.emplace(db);
    writer.emplace(*table, rows, policy, backoff);
    sqlite3_trace_v2(db.handle(), SQLITE_TRACE_STMT, count_select, &selects_);
  }

  // One commit of `batch` (and of due leases with `leases`), merged as the sink merges it. The
  // jobs of the rows made ready are copied to ready_jobs before the cache changes are applied
  // (Effects::Ready::job is valid until then only) and cleared in the Effects returned.
  Effects commit(Batch& batch, bool leases = false) {
    Effects fx;
    sqlite::Transaction tx(db);
    selects_ = 0;
    writer->apply(batch, now, fx);
    if (leases) writer->expire_leases(now, fx);
    writer->flush_counts(now, fx);
    selects = selects_;
    tx.commit();
    ready_jobs.clear();
    for (auto& r : fx.ready) {
      ready_jobs.emplace_back(r.job);
      r.job = {};
    }
    for (auto& [id, row] : fx.cache) rows.put(id, row);
    return fx;
  }
  std::vector<std::string> ready_jobs;  // of the last commit
  int selects = 0;                      // SELECTs the last commit's row work ran
  int selects_ = 0;                     // (counting)

  Effects expire() {
    Batch empty;
    return commit(empty, true);
  }

  // Submits `keys` of job j as `submission`; returns the ack.
  wire::Ack submit(const std::vector<std::string>& keys, std::string submission = "s1",
                   Effects* effects = nullptr) {
    Batch batch;
    const auto ack = batch.add_ack(wire::Ack{.client = "p", .kind = wire::AckKind::submit});
    const auto origin = batch.keep_origin(std::move(submission));
    for (const auto& key : keys) {
      batch.add(
          "j", key,
          Event{.kind = EventKind::submit, .data = "payload-" + key, .origin = origin, .ack = ack});
    }
    auto fx = commit(batch);
    if (effects != nullptr) *effects = fx;
    return batch.acks()[static_cast<std::size_t>(ack)];
  }

  // Hands job j's `key` out as the scheduler does: in transit, in memory only.
  void dispatch(const std::string& key) {
    Row row = table->load("j", key);
    ASSERT_TRUE(row.exists) << key;
    const auto r = on_due(row, policy, now);
    ASSERT_TRUE(r.dispatch) << key << " is " << store::to_string(row.status);
    rows.put(row_id("j", key), row);
  }

  Effects report(const std::string& key, EventKind kind, std::uint32_t attempt,
                 std::string data = {}, bool retryable = false) {
    Batch batch;
    const auto origin = batch.keep_origin("w1");
    batch.add("j", key,
              Event{.kind = kind,
                    .attempt = attempt,
                    .retryable = retryable,
                    .data = std::move(data),
                    .origin = origin});
    return commit(batch);
  }

  // submit + dispatch + started: a running row, cached with its lease.
  void run(const std::string& key) {
    (void)submit({key});
    dispatch(key);
    (void)report(key, EventKind::started, 1);
  }

  Row stored(const std::string& key) { return table->load("j", key); }

  std::optional<std::string> result_of(const std::string& key) {
    auto q = db.prepare("SELECT result FROM topics WHERE job = 'j' AND key = ?1");
    q.bind(1, key);
    if (!q.step() || q.is_null(0)) return std::nullopt;
    return std::string(q.column_blob(0));
  }
};

std::int64_t delta(const Effects& fx, Status s, const std::string& job = "j") {
  const auto it = fx.count_total.find(job);
  return it == fx.count_total.end() ? 0 : it->second[s];
}

TEST_F(BatchWriterTest, ASubmitInsertsAndReportsTheRowsAsReady) {
  Effects fx;
  const auto ack = submit({"k1", "k2"}, "s1", &fx);
  EXPECT_EQ(ack.accepted, 2U);
  EXPECT_EQ(selects, 0) << "a new topic is INSERTed without reading first";
  EXPECT_EQ(fx.updates, 2U);
  EXPECT_EQ(fx.written[static_cast<std::size_t>(Status::pending)], 2U);
  EXPECT_EQ(delta(fx, Status::pending), 2);
  ASSERT_EQ(fx.ready.size(), 2U) << "both rows wait for the scheduler";
  const auto k1 = stored("k1");
  const auto k2 = stored("k2");
  ASSERT_TRUE(k1.exists);
  ASSERT_TRUE(k2.exists);
  EXPECT_EQ(fx.ready[0].rowid, k1.rowid);
  EXPECT_EQ(fx.ready[0].due, now);
  EXPECT_EQ(ready_jobs, (std::vector<std::string>{"j", "j"}));
  EXPECT_EQ(fx.ready[1].rowid, k2.rowid);
  EXPECT_EQ(k1.status, Status::pending);
  EXPECT_EQ(k1.submission, "s1");
  EXPECT_TRUE(fx.cache.empty()) << "a ready row is not a row in flight";
  EXPECT_EQ(rows.size(), 0U);
}

TEST_F(BatchWriterTest, ADuplicateKeyInOneSubmissionIsCountedInTheAck) {
  Effects fx;
  const auto ack = submit({"k1", "k1", "k2"}, "s1", &fx);
  EXPECT_EQ(ack.accepted, 2U);
  EXPECT_EQ(ack.duplicates, 1U);
  EXPECT_EQ(fx.duplicates, 0U) << "a duplicate key is not a duplicate delivery";
  EXPECT_EQ(fx.ready.size(), 2U);
}

TEST_F(BatchWriterTest, AResubmittedCompletedTopicIsSkippedAndCounted) {
  run("done");
  (void)report("done", EventKind::completed, 1, "result");
  ASSERT_EQ(stored("done").status, Status::completed);
  (void)submit({"queued"});

  Effects fx;
  const auto ack = submit({"done", "queued", "new"}, "s2", &fx);
  EXPECT_EQ(selects, 2) << "done and queued are read once their INSERT found them; new is not";
  EXPECT_EQ(ack.skipped_completed, 1U) << "done";
  EXPECT_EQ(ack.already_queued, 1U) << "queued";
  EXPECT_EQ(ack.accepted, 1U) << "new, and only new";
  EXPECT_EQ(ack.duplicates + ack.requeued + ack.rejected + ack.skipped_failed, 0U);
  EXPECT_EQ(fx.updates, 1U) << "only the new topic is written";
  ASSERT_EQ(fx.ready.size(), 1U);
  EXPECT_EQ(fx.ready[0].rowid, stored("new").rowid);
  EXPECT_EQ(delta(fx, Status::pending), 1) << "the new topic only";
  EXPECT_EQ(delta(fx, Status::completed), 0);
  const auto done = stored("done");
  EXPECT_EQ(done.status, Status::completed);
  EXPECT_EQ(done.submission, "s1") << "the completed row is left alone";
  EXPECT_EQ(result_of("done"), "result");
}

TEST_F(BatchWriterTest, AResubmittedFailedTopicIsRequeuedOnlyWhenAsked) {
  run("k");
  (void)report("k", EventKind::failed, 1, "boom");
  ASSERT_EQ(stored("k").status, Status::failed);

  const auto skipped = submit({"k"}, "s2");
  EXPECT_EQ(skipped.skipped_failed, 1U);
  EXPECT_EQ(stored("k").status, Status::failed);

  Batch batch;
  const auto a = batch.add_ack(wire::Ack{.client = "p", .kind = wire::AckKind::submit});
  const auto origin = batch.keep_origin("s3");
  batch.add("j", "k",
            Event{.kind = EventKind::submit,
                  .requeue_failed = true,
                  .data = "again",
                  .origin = origin,
                  .ack = a});
  const auto fx = commit(batch);
  EXPECT_EQ(batch.acks()[0].requeued, 1U);
  ASSERT_EQ(fx.ready.size(), 1U);
  EXPECT_EQ(delta(fx, Status::failed), -1);
  EXPECT_EQ(delta(fx, Status::pending), 1);
  const auto row = stored("k");
  EXPECT_EQ(row.status, Status::pending);
  EXPECT_EQ(row.attempts, 1) << "attempt numbers never go back";
  EXPECT_EQ(row.attempts_base, 1) << "a fresh budget from here";
}

TEST_F(BatchWriterTest, AReportOfATaskInTransitUsesTheCachedRow) {
  (void)submit({"k"});
  dispatch("k");
  ASSERT_EQ(rows.in_transit(), 1);
  // Only the cache knows the task is in transit: the row in the database is ready, attempts 0.
  ASSERT_EQ(stored("k").attempts, 0);

  now += 10;
  const auto fx = report("k", EventKind::started, 1);
  EXPECT_EQ(selects, 0) << "the row in flight is not read from the database";
  EXPECT_EQ(fx.taken, 1U) << "a task in transit was started: read from the cache";
  EXPECT_EQ(fx.stale + fx.bogus + fx.guard_refused, 0U);
  EXPECT_EQ(delta(fx, Status::pending), -1);
  EXPECT_EQ(delta(fx, Status::running), 1);
  const auto row = stored("k");
  EXPECT_EQ(row.status, Status::running);
  EXPECT_EQ(row.attempts, 1);
  EXPECT_EQ(row.due_at, now + policy.lease_ms);
  EXPECT_EQ(rows.in_transit(), 0) << "no longer in transit";
  const Row* cached = rows.find(row_id("j", "k"));
  ASSERT_NE(cached, nullptr) << "running rows stay in flight";
  EXPECT_EQ(cached->status, Status::running);
  EXPECT_EQ(rows.next_lease_due(), now + policy.lease_ms);
}

TEST_F(BatchWriterTest, AReportOfAnUncachedReadyRowAdoptsTheAttempt) {
  (void)submit({"k"});  // e.g. handed out by a sink that then died
  const auto fx = report("k", EventKind::started, 1);
  EXPECT_EQ(selects, 1) << "a row not in flight is read (this also proves the count works)";
  EXPECT_EQ(fx.taken, 0U) << "not in transit as far as this sink knows";
  EXPECT_EQ(stored("k").status, Status::running);
  EXPECT_EQ(stored("k").attempts, 1);
  const Row* cached = rows.find(row_id("j", "k"));
  ASSERT_NE(cached, nullptr) << "a row that became running is cached";
  EXPECT_EQ(cached->rowid, stored("k").rowid);
}

TEST_F(BatchWriterTest, AHeartbeatMovesTheLeaseInTheRowAndTheCache) {
  run("k");
  const auto first_lease = stored("k").due_at;
  now += 400;
  const auto fx = report("k", EventKind::heartbeat, 1);
  EXPECT_EQ(fx.updates, 1U);
  EXPECT_EQ(stored("k").due_at, now + policy.lease_ms);
  EXPECT_NE(stored("k").due_at, first_lease);
  EXPECT_EQ(rows.next_lease_due(), now + policy.lease_ms) << "no timer left at the old lease";
  EXPECT_EQ(delta(fx, Status::running), 0) << "running stays running";
}

TEST_F(BatchWriterTest, ACompletedRowLeavesTheRowsInFlight) {
  run("k");
  const auto fx = report("k", EventKind::completed, 1, "the result");
  EXPECT_EQ(delta(fx, Status::running), -1);
  EXPECT_EQ(delta(fx, Status::completed), 1);
  EXPECT_EQ(fx.written[static_cast<std::size_t>(Status::completed)], 1U);
  EXPECT_EQ(stored("k").status, Status::completed);
  EXPECT_EQ(result_of("k"), "the result");
  EXPECT_EQ(rows.find(row_id("j", "k")), nullptr) << "a terminal row is forgotten";
  EXPECT_FALSE(rows.next_lease_due());

  const auto again = report("k", EventKind::completed, 1, "another result");
  EXPECT_EQ(again.duplicates, 1U) << "a second delivery of the result";
  EXPECT_EQ(again.updates, 0U);
  EXPECT_EQ(result_of("k"), "the result") << "never a second result";
}

TEST_F(BatchWriterTest, ARetryableFailureMakesTheRowReadyAfterBackoff) {
  run("k");
  const auto fx = report("k", EventKind::failed, 1, "flaky", true);
  EXPECT_EQ(fx.retried, 1U);
  ASSERT_EQ(fx.ready.size(), 1U);
  EXPECT_GE(fx.ready[0].due, now);
  EXPECT_LE(fx.ready[0].due, now + backoff.ceiling(0));
  const auto row = stored("k");
  EXPECT_EQ(row.status, Status::pending);
  EXPECT_EQ(row.attempts, 1);
  EXPECT_EQ(row.error, "flaky");
  EXPECT_EQ(row.due_at, fx.ready[0].due);
  EXPECT_EQ(rows.find(row_id("j", "k")), nullptr) << "ready rows are not in flight";
}

TEST_F(BatchWriterTest, StaleAndBogusReportsAreCountedAndWriteNothing) {
  (void)submit({"ready"});
  auto fx = report("unknown", EventKind::started, 1);
  EXPECT_EQ(fx.bogus, 1U) << "no such topic";
  fx = report("ready", EventKind::started, 5);
  EXPECT_EQ(fx.bogus, 1U) << "an attempt never handed out";
  EXPECT_EQ(fx.updates, 0U);

  run("k");
  (void)report("k", EventKind::released, 1);
  dispatch("k");                              // attempt 2
  (void)report("k", EventKind::started, 2);   // running attempt 2
  fx = report("k", EventKind::heartbeat, 1);  // the released attempt's late heartbeat
  EXPECT_EQ(fx.stale, 1U);
  EXPECT_EQ(fx.updates, 0U);
  EXPECT_EQ(stored("k").attempts, 2);
  EXPECT_EQ(stored("ready").status, Status::pending);
  EXPECT_EQ(stored("ready").attempts, 0);
}

TEST_F(BatchWriterTest, AnExpiredLeaseMakesTheRowReadyAgain) {
  run("k");
  const auto lease = *stored("k").due_at;
  const auto rowid = stored("k").rowid;
  now = lease - 1;
  auto fx = expire();
  EXPECT_EQ(fx.lease_expired, 0U) << "one ms before the lease ends";
  EXPECT_EQ(stored("k").status, Status::running);

  now = lease;
  fx = expire();
  EXPECT_EQ(selects, 0) << "leases are found in the rows in flight";
  EXPECT_EQ(fx.lease_expired, 1U);
  EXPECT_EQ(fx.redelivered, 1U);
  EXPECT_EQ(fx.updates, 1U);
  ASSERT_EQ(fx.ready.size(), 1U);
  EXPECT_EQ(fx.ready[0].rowid, rowid);
  EXPECT_EQ(fx.ready[0].due, kDueAtOnce) << "ahead of the rows that were ready before";
  EXPECT_EQ(ready_jobs, std::vector<std::string>{"j"}) << "viewed in the row in flight's id";
  EXPECT_EQ(delta(fx, Status::running), -1);
  EXPECT_EQ(delta(fx, Status::pending), 1);
  const auto row = stored("k");
  EXPECT_EQ(row.status, Status::pending);
  EXPECT_EQ(row.attempts, 1) << "the next dispatch hands out attempt 2";
  ASSERT_TRUE(row.error);
  EXPECT_NE(row.error->find("lease expired"), std::string::npos) << *row.error;
  EXPECT_EQ(rows.find(row_id("j", "k")), nullptr);
  EXPECT_FALSE(rows.next_lease_due()) << "the lease is gone with the row";
}

TEST_F(BatchWriterTest, AnExpiredLeaseAtMaxAttemptsFailsTheRow) {
  (void)submit({"k"});
  for (std::uint32_t attempt = 1; attempt <= 3; ++attempt) {
    dispatch("k");
    (void)report("k", EventKind::started, attempt);
    ASSERT_EQ(stored("k").attempts, attempt);
    if (attempt < 3) (void)report("k", EventKind::released, attempt);
  }
  now = *stored("k").due_at;
  const auto fx = expire();
  EXPECT_EQ(fx.lease_expired, 1U);
  EXPECT_EQ(fx.redelivered, 0U) << "no attempt left";
  EXPECT_TRUE(fx.ready.empty());
  EXPECT_EQ(delta(fx, Status::failed), 1);
  const auto row = stored("k");
  EXPECT_EQ(row.status, Status::failed);
  EXPECT_FALSE(row.due_at);
  EXPECT_EQ(rows.size(), 0U);
}

TEST_F(BatchWriterTest, OneCommitExpiresAtMostTheSweepLimit) {
  constexpr std::size_t kRows = BatchWriter::kLeaseSweepLimit + 5;
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < kRows; ++i) keys.push_back("k" + std::to_string(i));
  (void)submit(keys);
  Batch started;
  const auto origin = started.keep_origin("w1");
  for (const auto& key : keys) {
    dispatch(key);
    started.add("j", key, Event{.kind = EventKind::started, .attempt = 1, .origin = origin});
  }
  (void)commit(started);
  ASSERT_EQ(rows.size(), kRows);
  now += policy.lease_ms;
  const auto fx = expire();
  EXPECT_EQ(fx.lease_expired, BatchWriter::kLeaseSweepLimit);
  EXPECT_EQ(rows.size(), 5U) << "the rest waits for the next commit";
  EXPECT_EQ(expire().lease_expired, 5U);
}

// The sink applies the batch and expires due leases in one commit. A report in the batch of a row
// whose lease is due decides that row's fate: the lease sweep must see the row as the batch left
// it (or leave it alone), not as the rows in flight held it before the commit.
// (Found by these tests: expire_leases took its rows from RowsInFlight, which the sink updates
// only after COMMIT, and wrote a row the batch had just changed a second time from its stale
// state:
//   - completed (or failed) in the batch: the generic UPDATE is refused by the guard
//     (guard_refused, an "internal" error log), yet lease_expired/redelivered are counted and
//     account() counts running -> pending again: the job's counts drift (running -2, pending +1);
//   - heartbeat in the batch: the renewed lease is overwritten, the row becomes ready and the task
//     is sent again while its worker is alive;
//   - released (or retried) in the batch: the row is written twice, its error replaced by "lease
//     expired", a retry's backoff replaced by `now`, and it is counted twice (running -2,
//     pending +2). It now leaves rows this commit changed to the next one.)
TEST_F(BatchWriterTest, ARowCompletedInTheCommitThatSweepsItsLeaseIsNotExpired) {
  run("k");
  now = *stored("k").due_at;  // the lease is due in this very commit
  Batch batch;
  const auto origin = batch.keep_origin("w1");
  batch.add("j", "k",
            Event{.kind = EventKind::completed, .attempt = 1, .data = "result", .origin = origin});
  const auto fx = commit(batch, true);
  EXPECT_EQ(stored("k").status, Status::completed);
  EXPECT_EQ(fx.guard_refused, 0U) << "the sweep wrote over a row the batch had just completed";
  EXPECT_EQ(fx.lease_expired, 0U) << "a completed row has no lease to expire";
  EXPECT_EQ(fx.redelivered, 0U);
  EXPECT_EQ(delta(fx, Status::running), -1) << "one running row finished, counted once";
  EXPECT_EQ(delta(fx, Status::completed), 1);
  EXPECT_EQ(delta(fx, Status::pending), 0) << "no row became pending";
}

TEST_F(BatchWriterTest, AHeartbeatInTheCommitThatSweepsItsLeaseKeepsTheRowRunning) {
  run("k");
  now = *stored("k").due_at;
  Batch batch;
  const auto origin = batch.keep_origin("w1");
  batch.add("j", "k", Event{.kind = EventKind::heartbeat, .attempt = 1, .origin = origin});
  const auto fx = commit(batch, true);
  const auto row = stored("k");
  EXPECT_EQ(row.status, Status::running) << "the heartbeat renewed the lease in this commit";
  EXPECT_EQ(row.due_at, now + policy.lease_ms);
  EXPECT_EQ(fx.lease_expired, 0U);
  EXPECT_TRUE(fx.ready.empty()) << "not to be sent again";
  ASSERT_NE(rows.find(row_id("j", "k")), nullptr) << "still running, still in flight";
  EXPECT_EQ(rows.next_lease_due(), now + policy.lease_ms);
}

TEST_F(BatchWriterTest, ARowReleasedInTheCommitThatSweepsItsLeaseIsCountedOnce) {
  run("k");
  now = *stored("k").due_at;
  Batch batch;
  const auto origin = batch.keep_origin("w1");
  batch.add("j", "k", Event{.kind = EventKind::released, .attempt = 1, .origin = origin});
  const auto fx = commit(batch, true);
  EXPECT_EQ(stored("k").status, Status::pending);
  EXPECT_EQ(delta(fx, Status::running), -1) << "one running row became ready, counted once";
  EXPECT_EQ(delta(fx, Status::pending), 1);
  EXPECT_EQ(fx.lease_expired, 0U) << "released, not expired";
  EXPECT_FALSE(stored("k").error) << "no lease-expired error written over the release";
}

TEST_F(BatchWriterTest, ARequeueRequestMakesTheJobsFailedRowsReady) {
  run("a");
  (void)report("a", EventKind::failed, 1, "boom");
  run("b");
  (void)report("b", EventKind::failed, 1, "boom");
  (void)submit({"c"});
  Batch batch;
  batch.add_request(JobRequest{JobRequest::Kind::requeue_failed, "j", "operator"});
  now += 5;
  const auto fx = commit(batch);
  ASSERT_EQ(fx.results.size(), 1U);
  EXPECT_EQ(fx.results[0].status, 200);
  EXPECT_EQ(fx.results[0].changed, 2U);
  EXPECT_EQ(fx.updates, 2U);
  EXPECT_EQ(delta(fx, Status::failed), -2);
  EXPECT_EQ(delta(fx, Status::pending), 2);
  ASSERT_EQ(fx.ready.size(), 2U);
  EXPECT_EQ(ready_jobs, (std::vector<std::string>{"j", "j"}));
  for (const auto& r : fx.ready) {
    EXPECT_EQ(r.due, now);
    EXPECT_TRUE(r.rowid == stored("a").rowid || r.rowid == stored("b").rowid) << r.rowid;
  }
  EXPECT_EQ(stored("a").status, Status::pending);
  EXPECT_EQ(stored("a").attempts, 1);
  EXPECT_EQ(stored("a").attempts_base, 1);
}

}  // namespace
}  // namespace topicflow::sink
