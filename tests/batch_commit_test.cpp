// BatchCommit: one transaction per batch; a database another connection holds refuses it, and
// the batch is kept (with its acks counted afresh) for the next try.
#include "batch_commit.hpp"

#include "batch.hpp"
#include "batch_writer.hpp"
#include "database_state.hpp"
#include "effects.hpp"
#include "rows_in_flight.hpp"
#include "support/temp_dir.hpp"
#include "topic_table.hpp"

#include <topicflow/backoff.hpp>
#include <topicflow/clock.hpp>
#include <topicflow/sink.hpp>
#include <topicflow/sink_state.hpp>
#include <topicflow/sqlite.hpp>
#include <topicflow/store.hpp>
#include <topicflow/wire.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace topicflow::sink {
namespace {

class BatchCommitTest : public ::testing::Test {
 protected:
  testing::TempDir dir{"batch-commit"};
  std::string path = dir.file("topics.db");
  sqlite::Database db = store::open_for_writing(path);
  TopicTable table{db};
  RowsInFlight rows;
  Policy policy{.lease_ms = 1000, .max_attempts = 3, .dispatch_timeout_ms = 5000};
  Backoff retry_backoff{100, 1000, 42};
  BatchWriter writer{table, rows, policy, retry_backoff};
  DatabaseState state{Backoff(10, 100, 7)};
  SinkCounters counters;
  ManualClock clock;
  BatchCommit commit{db, table, writer, state, counters, clock};
  Batch batch;

  void SetUp() override { db.busy_timeout(0); }

  // A submission of `keys` in job "j", acknowledged to "run-1".
  void submit(std::initializer_list<const char*> keys) {
    const auto ack = batch.add_ack(wire::Ack{.client = "run-1", .kind = wire::AckKind::submit});
    const auto origin = batch.keep_origin("run-1");
    for (const auto* key : keys) {
      batch.add("j", key, Event{.kind = EventKind::submit, .origin = origin, .ack = ack});
    }
  }

  std::int64_t count_topics() {
    auto stmt = db.prepare("SELECT count(*) FROM topics");
    EXPECT_TRUE(stmt.step());
    return stmt.column_int(0);
  }
};

TEST_F(BatchCommitTest, CommitsTheBatchAndANewBrokerInOneTransaction) {
  submit({"k1", "k2"});
  batch.set_new_broker("b2");
  Effects fx;
  ASSERT_TRUE(commit.run(batch, 5000, fx));
  EXPECT_EQ(count_topics(), 2);
  EXPECT_EQ(fx.ready.size(), 2U) << "both topics are ready for dispatch";
  EXPECT_EQ(batch.acks()[0].accepted, 2U);
  EXPECT_EQ(table.meta("broker_instance").value_or(""), "b2");
  EXPECT_EQ(counters.busy_retries, 0U);
  EXPECT_EQ(state.retry_at(), 0);
}

TEST_F(BatchCommitTest, ABusyDatabaseKeepsTheBatchAndBacksOff) {
  submit({"k1", "k2"});
  sqlite::Database other(path);
  other.exec("BEGIN IMMEDIATE");  // another writer holds the lock
  Effects refused;
  EXPECT_FALSE(commit.run(batch, 5000, refused));
  EXPECT_EQ(counters.busy_retries, 1U);
  EXPECT_EQ(state.kind(), DatabaseState::Kind::busy);
  EXPECT_TRUE(state.backing_off(clock.steady_ms())) << "retry_at=" << state.retry_at();
  EXPECT_EQ(batch.events(), 2U) << "the batch is kept for the next try";
  other.exec("ROLLBACK");

  batch.acks()[0].accepted = 99;  // (what a try that failed late would have counted)
  Effects fx;
  ASSERT_TRUE(commit.run(batch, 5000, fx));
  EXPECT_EQ(count_topics(), 2);
  EXPECT_EQ(batch.acks()[0].accepted, 2U) << "a retry counts its acks afresh";
}

}  // namespace
}  // namespace topicflow::sink
