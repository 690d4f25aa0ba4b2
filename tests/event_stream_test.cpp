// What a /v1/events client is sent, call by call, on an injected clock.
#include "event_stream.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace topicflow::sink {
namespace {

// The "event: NAME" lines of `text`, in order.
std::vector<std::string> events(const std::string& text) {
  std::vector<std::string> out;
  for (std::size_t at = text.find("event: "); at != std::string::npos;
       at = text.find("event: ", at + 1)) {
    out.push_back(text.substr(at + 7, text.find('\n', at) - at - 7));
  }
  return out;
}

Snapshot with_job(const std::string& job, std::int64_t completed, std::int64_t pending) {
  Snapshot s;
  s.version = 1;
  s.wall_ms = 1700000000000;
  s.counts[job][store::Status::completed] = completed;
  s.counts[job][store::Status::pending] = pending;
  return s;
}

TEST(EventStream, FirstTheRetryHintThenEveryJobAndTheSink) {
  EventStream stream;
  auto s = with_job("a", 1, 2);
  s.counts["b"][store::Status::failed] = 1;
  s.workers_seen.push_back({"w1", 4, 1, 0});
  s.workers_seen.push_back({"w2", 2, 0, 0});
  const auto out = stream.next(s, 0);
  EXPECT_TRUE(out.starts_with("retry: 2000\n\n")) << out;
  EXPECT_EQ(events(out), (std::vector<std::string>{"job", "job", "sink"})) << out;
  EXPECT_NE(out.find(R"("job":"a")"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("time_ms":1700000000000)"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("slots":6)"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("workers":2)"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("healthy":true)"), std::string::npos) << out;
  EXPECT_TRUE(out.ends_with("\n\n")) << out;
  EXPECT_TRUE(stream.started());
  EXPECT_EQ(stream.version(), 1U);
}

TEST(EventStream, UnchangedCountsAreNotSentAgain) {
  EventStream stream;
  const auto s = with_job("a", 1, 2);
  (void)stream.next(s, 0);
  EXPECT_EQ(stream.next(s, 300), "") << "nothing changed, the sink's event is not due";
  EXPECT_EQ(events(stream.next(s, 1000)), (std::vector<std::string>{"sink"})) << "every second";
}

TEST(EventStream, AJobChangeWithin250msWaitsAndThenGoesOutWithTheLatestCounts) {
  EventStream stream;
  (void)stream.next(with_job("a", 1, 9), 0);
  EXPECT_EQ(stream.next(with_job("a", 2, 8), 100), "") << "100 ms after the last: held back";
  EXPECT_EQ(stream.next(with_job("a", 3, 7), 200), "");
  const auto out = stream.next(with_job("a", 4, 6), 250);
  EXPECT_EQ(events(out), (std::vector<std::string>{"job"})) << out;
  EXPECT_NE(out.find(R"("completed":4)"), std::string::npos) << out;
}

TEST(EventStream, PausingIsAChange) {
  EventStream stream;
  auto s = with_job("a", 1, 2);
  (void)stream.next(s, 0);
  s.paused.insert("a");
  const auto out = stream.next(s, 500);
  EXPECT_EQ(events(out), (std::vector<std::string>{"job"})) << out;
  EXPECT_NE(out.find(R"("paused":true)"), std::string::npos) << out;
}

TEST(EventStream, AJobThatIsGoneIsSentAsDeletedOnce) {
  EventStream stream;
  auto s = with_job("a", 1, 0);
  s.counts["b"][store::Status::completed] = 5;
  (void)stream.next(s, 0);
  s.counts.erase("a");
  const auto out = stream.next(s, 100);
  EXPECT_EQ(events(out), (std::vector<std::string>{"deleted"})) << out;
  EXPECT_NE(out.find(R"(data: {"job":"a"})"), std::string::npos) << out;
  EXPECT_EQ(stream.next(s, 200), "");
}

TEST(EventStream, AStreamForOneJobSeesOnlyThatJobAndTheSink) {
  EventStream stream("b");
  auto s = with_job("a", 1, 0);
  s.counts["b"][store::Status::running] = 3;
  const auto out = stream.next(s, 0);
  EXPECT_EQ(events(out), (std::vector<std::string>{"job", "sink"})) << out;
  EXPECT_EQ(out.find(R"("job":"a")"), std::string::npos) << out;
}

TEST(EventStream, AnUnhealthySinkSaysWhy) {
  EventStream stream;
  Snapshot s;
  s.steady_ms = 100000;
  s.unavailable_since_ms = 1;
  s.unavailable_reason = "database or disk is full";
  const auto out = stream.next(s, 0);
  EXPECT_NE(out.find(R"("healthy":false)"), std::string::npos) << out;
  EXPECT_NE(out.find("disk is full"), std::string::npos) << out;
}

TEST(EventStream, TheSinksEventEverySecondKeepsAQuietStreamAlive) {
  EventStream stream("quiet");
  const Snapshot s;
  EXPECT_EQ(events(stream.next(s, 0)), (std::vector<std::string>{"sink"}));
  EXPECT_EQ(stream.next(s, 999), "");
  EXPECT_EQ(events(stream.next(s, 1000)), (std::vector<std::string>{"sink"}));
}

}  // namespace
}  // namespace topicflow::sink
