#include <topicflow/sink_state.hpp>

#include <gtest/gtest.h>

namespace topicflow::sink {
namespace {

using store::Status;

class SinkState : public ::testing::Test {
 protected:
  Policy policy{.lease_ms = 1000, .max_attempts = 3, .dispatch_timeout_ms = 5000};
  Backoff backoff{100, 1000, 42};
  std::int64_t now = 1'000'000;

  Outcome submit(Row& row, const std::string& submission, bool requeue = false) {
    return apply(row,
                 Event{.kind = EventKind::submit,
                       .requeue_failed = requeue,
                       .data = "payload",
                       .origin = submission},
                 policy, backoff, now);
  }
  Outcome update(Row& row, EventKind kind, std::uint32_t attempt, bool retryable = false,
                 std::string data = {}) {
    return apply(row,
                 Event{.kind = kind,
                       .attempt = attempt,
                       .retryable = retryable,
                       .data = std::move(data),
                       .origin = "w1"},
                 policy, backoff, now);
  }
  // Hands the next attempt out the way the sweep does.
  void dispatch(Row& row) {
    auto r = on_due(row, policy, now);
    ASSERT_TRUE(r.dispatch) << "status=" << store::to_string(row.status);
  }
};

TEST_F(SinkState, SubmitInsertsPendingDueNow) {
  Row row;
  EXPECT_EQ(submit(row, "s1"), Outcome::accepted);
  EXPECT_TRUE(row.exists);
  EXPECT_EQ(row.status, Status::pending);
  EXPECT_EQ(row.attempts, 0);
  EXPECT_EQ(row.due_at, now);
  EXPECT_FALSE(row.sent_at);
  EXPECT_EQ(row.new_payload, "payload");
}

TEST_F(SinkState, DuplicateKeyInOneSubmissionIsCounted) {
  Row row;
  submit(row, "s1");
  EXPECT_EQ(submit(row, "s1"), Outcome::duplicate);
  EXPECT_EQ(submit(row, "s2"), Outcome::already_queued);
}

TEST_F(SinkState, ResubmitLeavesCompletedAlone) {
  Row row;
  submit(row, "s1");
  dispatch(row);
  update(row, EventKind::completed, 1, false, "result");
  row.changed = false;
  EXPECT_EQ(submit(row, "s2"), Outcome::skipped_completed);
  EXPECT_FALSE(row.changed);
  EXPECT_EQ(row.status, Status::completed);
  EXPECT_EQ(row.attempts, 1);
}

TEST_F(SinkState, DispatchStartCompleteHappyPath) {
  Row row;
  submit(row, "s1");
  dispatch(row);
  EXPECT_EQ(row.attempts, 1);
  EXPECT_TRUE(row.in_transit());
  EXPECT_EQ(row.due_at, now + policy.dispatch_timeout_ms);
  EXPECT_EQ(update(row, EventKind::started, 1), Outcome::applied);
  EXPECT_EQ(row.status, Status::running);
  EXPECT_FALSE(row.in_transit());
  EXPECT_EQ(row.due_at, now + policy.lease_ms);
  EXPECT_EQ(update(row, EventKind::completed, 1, false, "ok"), Outcome::applied);
  EXPECT_EQ(row.status, Status::completed);
  EXPECT_EQ(row.new_result, "ok");
  EXPECT_FALSE(row.due_at);
}

TEST_F(SinkState, LateStartedNeverOverwritesCompleted) {
  Row row;
  submit(row, "s1");
  dispatch(row);
  update(row, EventKind::completed, 1);
  EXPECT_EQ(update(row, EventKind::started, 1), Outcome::stale);
  EXPECT_EQ(update(row, EventKind::heartbeat, 1), Outcome::stale);
  EXPECT_EQ(update(row, EventKind::failed, 1, true, "late"), Outcome::stale);
  EXPECT_EQ(row.status, Status::completed);
  EXPECT_FALSE(row.error);
}

TEST_F(SinkState, DuplicateResultIsNotAppliedTwice) {
  Row row;
  submit(row, "s1");
  dispatch(row);
  update(row, EventKind::completed, 1, false, "first");
  EXPECT_EQ(update(row, EventKind::completed, 1, false, "second"), Outcome::duplicate);
  EXPECT_EQ(row.new_result, "first");
}

TEST_F(SinkState, ResultOfSupersededAttemptIsAcceptedWhileNotTerminal) {
  Row row;
  submit(row, "s1");
  dispatch(row);
  update(row, EventKind::started, 1);
  now += policy.lease_ms + 1;
  auto r = on_due(row, policy, now);  // lease expired: ready again, attempt 1 given back
  EXPECT_TRUE(r.lease_expired);
  EXPECT_TRUE(r.redelivery);
  EXPECT_FALSE(r.dispatch) << "the ready sweep sends the next attempt";
  EXPECT_EQ(row.status, Status::pending);
  EXPECT_FALSE(row.sent_at);
  EXPECT_EQ(row.due_at, kDueAtOnce) << "given back: ahead of the backlog";
  EXPECT_EQ(row.attempts, 1);
  EXPECT_EQ(update(row, EventKind::started, 1), Outcome::stale) << "attempt 1 was given back";
  EXPECT_EQ(update(row, EventKind::heartbeat, 1), Outcome::stale);
  EXPECT_EQ(row.status, Status::pending);
  dispatch(row);  // attempt 2 goes out
  EXPECT_EQ(row.attempts, 2);
  EXPECT_EQ(update(row, EventKind::started, 1), Outcome::stale)
      << "a late start of attempt 1 is ignored";
  EXPECT_EQ(update(row, EventKind::failed, 1, true, "x"), Outcome::stale)
      << "attempt 2 is on its way";
  EXPECT_EQ(update(row, EventKind::completed, 1, false, "late but fine"), Outcome::applied);
  EXPECT_EQ(row.status, Status::completed);
  EXPECT_EQ(update(row, EventKind::completed, 2, false, "again"), Outcome::duplicate);
}

TEST_F(SinkState, RetryableFailureSchedulesBackoffThenFails) {
  Row row;
  submit(row, "s1");
  for (std::uint32_t attempt = 1; attempt <= 3; ++attempt) {
    dispatch(row);
    ASSERT_EQ(row.attempts, attempt);
    update(row, EventKind::started, attempt);
    const auto outcome =
        update(row, EventKind::failed, attempt, true, "boom " + std::to_string(attempt));
    if (attempt < 3) {
      ASSERT_EQ(outcome, Outcome::retry_scheduled) << "attempt " << attempt;
      EXPECT_EQ(row.status, Status::pending);
      EXPECT_FALSE(row.sent_at);
      ASSERT_TRUE(row.due_at);
      EXPECT_GE(*row.due_at, now);
      EXPECT_LE(*row.due_at, now + backoff.ceiling(attempt - 1)) << "attempt " << attempt;
      now = *row.due_at;
    } else {
      EXPECT_EQ(outcome, Outcome::applied);
      EXPECT_EQ(row.status, Status::failed);
      EXPECT_EQ(row.error, "boom 3");
      EXPECT_FALSE(row.due_at);
    }
  }
}

TEST_F(SinkState, PermanentFailureFailsAtOnce) {
  Row row;
  submit(row, "s1");
  dispatch(row);
  EXPECT_EQ(update(row, EventKind::failed, 1, false, "bad input"), Outcome::applied);
  EXPECT_EQ(row.status, Status::failed);
  EXPECT_EQ(row.attempts, 1);
  EXPECT_EQ(row.error, "bad input");
}

TEST_F(SinkState, RequeueGivesFailedTopicsFreshAttempts) {
  Row row;
  submit(row, "s1");
  dispatch(row);
  update(row, EventKind::failed, 1, false, "bad");
  EXPECT_EQ(submit(row, "s2"), Outcome::skipped_failed);
  EXPECT_EQ(row.status, Status::failed);
  EXPECT_EQ(submit(row, "s3", true), Outcome::requeued);
  EXPECT_EQ(row.status, Status::pending);
  EXPECT_EQ(row.attempts, 1) << "attempt numbers never go back";
  EXPECT_EQ(row.attempts_base, 1) << "the budget counts from here";
  EXPECT_TRUE(row.requeued);
  // a fresh budget: max_attempts (3) more tries, numbered 2, 3, 4
  for (std::uint32_t attempt = 2; attempt <= 4; ++attempt) {
    dispatch(row);
    EXPECT_EQ(row.attempts, attempt);
    update(row, EventKind::failed, attempt, true, "again");
  }
  EXPECT_EQ(row.status, Status::failed) << "after its 3 fresh attempts";
}

// A cancelled topic submitted again is new work; a result of the run the cancel stopped (the
// same attempt number, had it been reused) must never count for it.
TEST_F(SinkState, ACancelledTopicSubmittedAgainRunsWithANewAttemptNumber) {
  Row row;
  submit(row, "s1");
  dispatch(row);
  update(row, EventKind::started, 1);
  row.status = Status::cancelled;  // (the cancel's UPDATE)
  row.due_at.reset();
  EXPECT_EQ(update(row, EventKind::completed, 1, false, "late"), Outcome::cancelled_late);
  EXPECT_EQ(submit(row, "s2"), Outcome::requeued) << "no requeue flag needed for cancelled";
  EXPECT_EQ(update(row, EventKind::completed, 1, false, "late again"), Outcome::stale)
      << "attempt 1 belongs to the cancelled run";
  EXPECT_EQ(row.status, Status::pending);
  dispatch(row);
  EXPECT_EQ(row.attempts, 2);
  EXPECT_EQ(update(row, EventKind::completed, 2, false, "new"), Outcome::applied);
  EXPECT_EQ(row.status, Status::completed);
}

TEST_F(SinkState, LeaseExpiryAtMaxAttemptsFails) {
  Row row;
  submit(row, "s1");
  for (std::uint32_t attempt = 1; attempt <= 3; ++attempt) {
    dispatch(row);
    ASSERT_EQ(row.attempts, attempt);
    update(row, EventKind::started, attempt);
    now += policy.lease_ms + 1;
    EXPECT_TRUE(on_due(row, policy, now).lease_expired);
  }
  EXPECT_EQ(row.status, Status::failed);
  EXPECT_EQ(row.attempts, 3);
  ASSERT_TRUE(row.error);
  EXPECT_NE(row.error->find("lease expired"), std::string::npos) << *row.error;
}

TEST_F(SinkState, HeartbeatExtendsLease) {
  Row row;
  submit(row, "s1");
  dispatch(row);
  update(row, EventKind::started, 1);
  now += 600;
  update(row, EventKind::heartbeat, 1);
  EXPECT_EQ(row.due_at, now + policy.lease_ms);
}

// The sink hands an attempt out from memory and writes it only with the attempt's first report.
// A sink that lost track of it (restarted; or resent it after the dispatch timeout) reads the
// row as ready with the attempt before, and must still take that report.
TEST_F(SinkState, FirstReportOfAnAttemptHandedOutFromMemoryIsAdopted) {
  Row row;
  submit(row, "s1");  // ready, attempts 0
  EXPECT_EQ(update(row, EventKind::started, 1), Outcome::applied);
  EXPECT_EQ(row.status, Status::running);
  EXPECT_EQ(row.attempts, 1);

  Row fresh;
  submit(fresh, "s1");
  EXPECT_EQ(update(fresh, EventKind::completed, 1, false, "done"), Outcome::applied);
  EXPECT_EQ(fresh.status, Status::completed);
  EXPECT_EQ(fresh.attempts, 1);

  Row retried;  // attempt 1 failed and is retried: only attempt 2 is adoptable
  submit(retried, "s1");
  dispatch(retried);
  update(retried, EventKind::failed, 1, true, "try again");
  ASSERT_EQ(retried.status, Status::pending);
  EXPECT_EQ(update(retried, EventKind::started, 1), Outcome::stale);
  EXPECT_EQ(update(retried, EventKind::failed, 1, true, "late"), Outcome::stale);
  EXPECT_EQ(update(retried, EventKind::started, 3), Outcome::bogus) << "never handed out";
  EXPECT_EQ(retried.status, Status::pending);
  EXPECT_EQ(update(retried, EventKind::started, 2), Outcome::applied);
  EXPECT_EQ(retried.attempts, 2);
}

TEST_F(SinkState, ReleasedTaskGoesBackToPendingAheadOfTheBacklog) {
  Row row;
  submit(row, "s1");
  dispatch(row);
  update(row, EventKind::started, 1);
  now += 10;
  EXPECT_EQ(update(row, EventKind::released, 1), Outcome::applied);
  EXPECT_EQ(row.status, Status::pending);
  EXPECT_EQ(row.due_at, kDueAtOnce);
  EXPECT_FALSE(row.sent_at);
  EXPECT_EQ(update(row, EventKind::heartbeat, 1), Outcome::stale)
      << "a released attempt stays given back";
  EXPECT_EQ(row.status, Status::pending);
}

TEST_F(SinkState, UpdatesForUnknownRowsOrAttemptsAreBogus) {
  Row none;
  EXPECT_EQ(update(none, EventKind::completed, 1), Outcome::bogus);
  EXPECT_FALSE(none.exists);
  Row ready;
  submit(ready, "s1");
  EXPECT_EQ(update(ready, EventKind::started, 2), Outcome::bogus)
      << "only attempt 1 can have been handed out";
  EXPECT_EQ(ready.attempts, 0);
  Row row;
  submit(row, "s1");
  dispatch(row);
  EXPECT_EQ(update(row, EventKind::completed, 7), Outcome::bogus);
  EXPECT_EQ(update(row, EventKind::started, 0), Outcome::bogus);
  EXPECT_EQ(row.status, Status::pending);
}

TEST_F(SinkState, StartedFromSecondWorkerIsCountedDuplicate) {
  Row row;
  submit(row, "s1");
  dispatch(row);
  EXPECT_EQ(apply(row, Event{.kind = EventKind::started, .attempt = 1, .origin = "a"}, policy,
                  backoff, now),
            Outcome::applied);
  EXPECT_EQ(apply(row, Event{.kind = EventKind::started, .attempt = 1, .origin = "b"}, policy,
                  backoff, now),
            Outcome::duplicate);
}

}  // namespace
}  // namespace topicflow::sink
