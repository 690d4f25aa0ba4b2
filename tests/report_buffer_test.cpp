// ReportBuffer (worker/src/report_buffer.cpp): what a worker's reports hold and when they are
// due; time is an argument (label unit, no sockets, no sleeps).
#include <topicflow/report_buffer.hpp>

#include <gtest/gtest.h>

#include <string>

namespace topicflow {
namespace {

using wire::UpdateKind;

wire::Task task(const std::string& key, std::uint32_t attempt = 1) {
  return wire::Task{"job", key, "payload", attempt};
}

wire::Update update(UpdateKind kind, const std::string& key, std::uint32_t attempt = 1) {
  return ReportBuffer::update_for(kind, task(key, attempt));
}

TEST(ReportBuffer, AnEmptyReportAnnouncesTheWorkerAndItsSlots) {
  ReportBuffer buffer("w-1", 8, 2);
  EXPECT_TRUE(buffer.empty());
  EXPECT_FALSE(buffer.due_ms().has_value());
  EXPECT_FALSE(buffer.due(1000000)) << "nothing to send is never due";
  const auto report = buffer.take();
  EXPECT_EQ(report.worker, "w-1");
  EXPECT_EQ(report.slots, 8U);
  EXPECT_TRUE(report.updates.empty());
}

TEST(ReportBuffer, DueFlushDelayAfterTheFirstUpdate) {
  ReportBuffer buffer("w", 1, 20);
  buffer.add(1, update(UpdateKind::started, "a"), 1000);
  buffer.add(2, update(UpdateKind::started, "b"), 1015);
  EXPECT_EQ(buffer.due_ms(), 1020) << "the first update starts the delay, later ones do not";
  EXPECT_FALSE(buffer.due(1019));
  EXPECT_TRUE(buffer.due(1020));
  const auto report = buffer.take();
  ASSERT_EQ(report.updates.size(), 2U);
  EXPECT_EQ(report.updates[0].key, "a") << "in the order they were added";
  EXPECT_EQ(report.updates[1].key, "b");
  EXPECT_TRUE(buffer.empty());
  buffer.add(3, update(UpdateKind::started, "c"), 5000);
  EXPECT_EQ(buffer.due_ms(), 5020) << "a new report starts a new delay";
}

TEST(ReportBuffer, DueAtOnceWhenFullByCountOrBytes) {
  ReportBuffer buffer("w", 1, 60000);
  for (std::uint64_t i = 1; i < ReportBuffer::kMaxUpdates; ++i)
    buffer.add(i, update(UpdateKind::heartbeat, "k" + std::to_string(i)), 0);
  EXPECT_FALSE(buffer.due(0));
  buffer.add(ReportBuffer::kMaxUpdates, update(UpdateKind::heartbeat, "last"), 0);
  EXPECT_TRUE(buffer.full());
  EXPECT_TRUE(buffer.due(0)) << ReportBuffer::kMaxUpdates << " updates: due whatever the time";

  ReportBuffer big("w", 1, 60000);
  auto result = update(UpdateKind::completed, "big");
  result.data.assign(ReportBuffer::kMaxBytes, 'r');
  big.add(1, std::move(result), 0);
  EXPECT_TRUE(big.due(0)) << "a report as large as a frame may get: due at once";
}

TEST(ReportBuffer, AResultDropsItsStartedNotSentYet) {
  ReportBuffer buffer("w", 2, 100);
  buffer.add(1, update(UpdateKind::started, "a"), 0);
  buffer.add(2, update(UpdateKind::started, "b"), 0);
  EXPECT_TRUE(buffer.started_pending(1));
  EXPECT_TRUE(buffer.drop_started(1)) << "a finished before its start left";
  EXPECT_FALSE(buffer.started_pending(1));
  EXPECT_FALSE(buffer.drop_started(1)) << "only once";
  buffer.add(1, update(UpdateKind::completed, "a"), 0);
  const auto report = buffer.take();
  ASSERT_EQ(report.updates.size(), 2U);
  EXPECT_EQ(report.updates[0].kind, UpdateKind::started);
  EXPECT_EQ(report.updates[0].key, "b");
  EXPECT_EQ(report.updates[1].kind, UpdateKind::completed);
  EXPECT_EQ(report.updates[1].key, "a");
}

TEST(ReportBuffer, AStartedThatLeftIsNotDroppedAfterwards) {
  ReportBuffer buffer("w", 1, 2);
  buffer.add(1, update(UpdateKind::started, "a"), 0);
  (void)buffer.take();
  EXPECT_FALSE(buffer.started_pending(1)) << "sent: a heartbeat may follow";
  EXPECT_FALSE(buffer.drop_started(1)) << "the sink has it: the result must not pretend otherwise";
}

TEST(ReportBuffer, UpdatesCarryTheTasksJobKeyAndAttempt) {
  const auto u = ReportBuffer::update_for(UpdateKind::released, task("k", 4));
  EXPECT_EQ(u.kind, UpdateKind::released);
  EXPECT_EQ(u.job, "job");
  EXPECT_EQ(u.key, "k");
  EXPECT_EQ(u.attempt, 4U);
  EXPECT_TRUE(u.data.empty());
}

}  // namespace
}  // namespace topicflow
