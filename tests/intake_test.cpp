// Intake: frames from the PULL socket and calls from the HTTP API become batch events, acks and
// job requests; bad frames and frames of the wrong type are counted and dropped.
#include "intake.hpp"

#include "api_inbox.hpp"
#include "batch.hpp"
#include "dispatch_window.hpp"
#include "row_id.hpp"
#include "rows_in_flight.hpp"

#include <topicflow/clock.hpp>
#include <topicflow/sink.hpp>
#include <topicflow/wire.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace topicflow::sink {
namespace {

class IntakeTest : public ::testing::Test {
 protected:
  ManualClock clock;
  Batch batch;
  RowsInFlight rows;
  DispatchWindow window{100, 20, 30000};
  SinkCounters counters;
  std::string broker_instance;
  std::vector<wire::Hello> hellos;
  Intake intake{
      batch, rows, window, counters, clock, broker_instance, [this](const wire::Hello& m) {
        hellos.push_back(m);
      }};

  void receive(const wire::Message& m) { intake.handle(wire::encode(m)); }
};

TEST_F(IntakeTest, SubmitBecomesOneSubmitEventPerItemAndAnAck) {
  receive(wire::Submit{.job = "j",
                       .submission = "run-1",
                       .seq = 7,
                       .requeue_failed = true,
                       .items = {{"k1", "p1"}, {"k2", "p2"}}});
  EXPECT_EQ(counters.messages, 1U);
  ASSERT_EQ(batch.entry_count(), 2U);
  EXPECT_EQ(batch.entry(0).job(), "j");
  EXPECT_EQ(batch.entry(0).key(), "k1");
  ASSERT_EQ(batch.entry(1).events.size(), 1U);
  const auto& event = batch.entry(1).events[0];
  EXPECT_EQ(event.kind, EventKind::submit);
  EXPECT_TRUE(event.requeue_failed);
  EXPECT_EQ(event.data, "p2");
  EXPECT_EQ(event.origin, "run-1") << "the submission id tells duplicates inside one run";
  ASSERT_EQ(batch.acks().size(), 1U);
  EXPECT_EQ(batch.acks()[0].client, "run-1");
  EXPECT_EQ(batch.acks()[0].kind, wire::AckKind::submit);
  EXPECT_EQ(batch.acks()[0].seq, 7U);
  EXPECT_EQ(batch.started_ms(), clock.steady_ms());
}

TEST_F(IntakeTest, EmptySubmitIsStillAcknowledged) {
  receive(wire::Submit{
      .job = "j", .submission = "run-1", .seq = 3, .requeue_failed = false, .items = {}});
  EXPECT_EQ(batch.events(), 0U);
  ASSERT_EQ(batch.acks().size(), 1U) << "the producer waits for the ack of every chunk";
  EXPECT_EQ(batch.acks()[0].seq, 3U);
}

TEST_F(IntakeTest, ReportMapsUpdateKindsAndHearsTheWorker) {
  receive(wire::Report{.worker = "w1",
                       .updates = {{wire::UpdateKind::started, "j", "k1", 2, false, ""},
                                   {wire::UpdateKind::failed, "j", "k2", 1, true, "boom"}},
                       .slots = 4});
  EXPECT_EQ(window.workers(), 1U);
  EXPECT_EQ(window.total_slots(), 4U);
  ASSERT_EQ(batch.entry_count(), 2U);
  EXPECT_EQ(batch.entry(0).events[0].kind, EventKind::started);
  EXPECT_EQ(batch.entry(0).events[0].attempt, 2U);
  EXPECT_EQ(batch.entry(1).events[0].kind, EventKind::failed);
  EXPECT_TRUE(batch.entry(1).events[0].retryable);
  EXPECT_EQ(batch.entry(1).events[0].data, "boom");
  EXPECT_EQ(batch.entry(1).events[0].origin, "w1");
  EXPECT_EQ(batch.takes(), 0U) << "no task of theirs is in transit";
}

TEST_F(IntakeTest, EveryUpdateKindHasItsEventKind) {
  EXPECT_EQ(to_event_kind(wire::UpdateKind::started), EventKind::started);
  EXPECT_EQ(to_event_kind(wire::UpdateKind::heartbeat), EventKind::heartbeat);
  EXPECT_EQ(to_event_kind(wire::UpdateKind::completed), EventKind::completed);
  EXPECT_EQ(to_event_kind(wire::UpdateKind::failed), EventKind::failed);
  EXPECT_EQ(to_event_kind(wire::UpdateKind::released), EventKind::released);
}

TEST_F(IntakeTest, AReportOfATaskInTransitMarksItsEntryAsTaking) {
  Row row;
  row.exists = true;
  row.attempts = 0;
  row.sent_at = 5;
  row.due_at = 100;
  row.rowid = 1;
  rows.put(row_id("j", "k"), row);
  receive(wire::Report{.worker = "w1",
                       .updates = {{wire::UpdateKind::heartbeat, "j", "k", 1, false, ""}},
                       .slots = 1});
  EXPECT_EQ(batch.takes(), 0U) << "a heartbeat is not a start";
  receive(wire::Report{.worker = "w1",
                       .updates = {{wire::UpdateKind::started, "j", "k", 1, false, ""},
                                   {wire::UpdateKind::completed, "j", "k", 1, false, "r"}},
                       .slots = 1});
  EXPECT_EQ(batch.takes(), 1U) << "one topic frees one place in the window, whatever its events";
}

TEST_F(IntakeTest, HelloIsAnsweredThroughTheCallback) {
  receive(wire::Hello{.client = "c1", .job = "j"});
  ASSERT_EQ(hellos.size(), 1U);
  EXPECT_EQ(hellos[0].client, "c1");
  EXPECT_EQ(hellos[0].job, "j");
  EXPECT_TRUE(batch.empty()) << "a hello waits for no commit";
}

TEST_F(IntakeTest, ControlAndRequeueBecomeJobRequestsInOrder) {
  receive(wire::Control{.client = "c1", .job = "j", .action = wire::ControlAction::cancel});
  receive(wire::Requeue{.client = "c2", .job = "k"});
  receive(wire::Control{.client = "c3", .job = "j", .action = wire::ControlAction::remove});
  ASSERT_EQ(batch.requests().size(), 3U);
  EXPECT_EQ(batch.requests()[0].kind, JobRequest::Kind::cancel);
  EXPECT_EQ(batch.requests()[0].client, "c1");
  EXPECT_EQ(batch.requests()[1].kind, JobRequest::Kind::requeue_failed);
  EXPECT_EQ(batch.requests()[1].job, "k");
  EXPECT_EQ(batch.requests()[2].kind, JobRequest::Kind::remove);
  EXPECT_FALSE(batch.empty());
}

TEST_F(IntakeTest, BrokerHelloCountsOnlyForANewInstance) {
  broker_instance = "b1";
  receive(wire::BrokerHello{.instance = "b1"});
  EXPECT_FALSE(batch.new_broker().has_value()) << "the broker of record said hello again";
  receive(wire::BrokerHello{.instance = "b2"});
  ASSERT_TRUE(batch.new_broker().has_value());
  EXPECT_EQ(*batch.new_broker(), "b2");
  EXPECT_FALSE(batch.empty()) << "a new broker is committed (and its tasks in transit resent)";
}

TEST_F(IntakeTest, BadFramesAndMessagesOfOtherSocketsAreCountedAndDropped) {
  intake.handle("not msgpack");
  receive(wire::Task{.job = "j", .key = "k", .payload = "p", .attempt = 1});
  EXPECT_EQ(counters.messages, 2U);
  EXPECT_EQ(counters.decode_errors, 2U);
  EXPECT_TRUE(batch.empty());
}

TEST_F(IntakeTest, ApiCallsBecomeEventsAndRequestsWithTheirCallKept) {
  auto submit = std::make_shared<ApiCall>();
  submit->kind = ApiCall::Kind::submit;
  submit->job = "j";
  submit->items = {{"k1", "p1"}, {"k1", "p2"}};
  auto retry = std::make_shared<ApiCall>();
  retry->kind = ApiCall::Kind::retry_failed;
  retry->job = "j";
  auto again = std::make_shared<ApiCall>();
  again->kind = ApiCall::Kind::submit;
  again->job = "j";
  again->items = {{"k2", "p"}};
  intake.take({submit, retry, again});

  ASSERT_EQ(batch.entry_count(), 2U);
  ASSERT_EQ(batch.entry(0).events.size(), 2U);
  const auto first_origin = batch.entry(0).events[0].origin;
  EXPECT_EQ(batch.entry(0).events[1].origin, first_origin)
      << "one HTTP submission is one submission: the same key twice in it is a duplicate";
  EXPECT_NE(batch.entry(1).events[0].origin, first_origin) << "each request has its own id";
  EXPECT_TRUE(first_origin.starts_with("http-")) << first_origin;
  ASSERT_EQ(batch.api_submits().size(), 2U);
  EXPECT_EQ(batch.api_submits()[0].second, submit);
  EXPECT_EQ(batch.acks().size(), 2U);
  EXPECT_TRUE(batch.acks()[0].client.empty()) << "answered through the call, not published";
  ASSERT_EQ(batch.requests().size(), 1U);
  EXPECT_EQ(batch.requests()[0].kind, JobRequest::Kind::requeue_failed);
  EXPECT_EQ(batch.requests()[0].call, retry);
  EXPECT_EQ(counters.messages, 0U) << "HTTP calls are not socket messages";
}

}  // namespace
}  // namespace topicflow::sink
