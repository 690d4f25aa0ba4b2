// Batch: events coalesced per topic in arrival order, acks, requests, origins, clear and reuse.
#include "batch.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace topicflow::sink {
namespace {

Event report(EventKind kind, std::string data = {}) {
  return Event{.kind = kind, .attempt = 1, .data = std::move(data)};
}

// The data of an entry's events, in order.
std::vector<std::string> data_of(const Entry& entry) {
  std::vector<std::string> out;
  for (const auto& e : entry.events) out.push_back(e.data);
  return out;
}

TEST(Batch, CoalescesEventsPerTopicInArrivalOrder) {
  Batch batch;
  EXPECT_TRUE(batch.empty());
  Entry& first = batch.add("a", "k1", report(EventKind::started, "1"));
  batch.add("a", "k2", report(EventKind::started, "2"));
  Entry& again = batch.add("a", "k1", report(EventKind::heartbeat, "3"));
  batch.add("b", "k1", report(EventKind::started, "4"));
  batch.add("a", "k1", report(EventKind::completed, "5"));

  EXPECT_EQ(&first, &again) << "the same topic returns the same entry";
  EXPECT_FALSE(batch.empty());
  EXPECT_EQ(batch.events(), 5U);
  ASSERT_EQ(batch.entry_count(), 3U) << "a/k1, a/k2 and b/k1";
  EXPECT_EQ(batch.entry(0).job(), "a");
  EXPECT_EQ(batch.entry(0).key(), "k1");
  EXPECT_EQ(data_of(batch.entry(0)), (std::vector<std::string>{"1", "3", "5"}));
  EXPECT_EQ(batch.entry(0).events[1].kind, EventKind::heartbeat);
  EXPECT_EQ(batch.entry(1).key(), "k2");
  EXPECT_EQ(data_of(batch.entry(1)), std::vector<std::string>{"2"});
  EXPECT_EQ(batch.entry(2).job(), "b") << "same key, other job: another topic";
  EXPECT_EQ(batch.entry(2).key(), "k1");
  EXPECT_EQ(data_of(batch.entry(2)), std::vector<std::string>{"4"});
}

TEST(Batch, JobAndKeyAreNotConfusedAcrossTheirBoundary) {
  Batch batch;
  batch.add("ab", "c", report(EventKind::started));
  batch.add("a", "bc", report(EventKind::started));
  const std::string nul_key("k\0x", 3);
  batch.add("a", nul_key, report(EventKind::started));
  ASSERT_EQ(batch.entry_count(), 3U) << "ab/c, a/bc and a/k<NUL>x are three topics";
  EXPECT_EQ(batch.entry(0).job(), "ab");
  EXPECT_EQ(batch.entry(0).key(), "c");
  EXPECT_EQ(batch.entry(1).job(), "a");
  EXPECT_EQ(batch.entry(1).key(), "bc");
  EXPECT_EQ(batch.entry(2).key(), nul_key) << "a key may hold a NUL; the job never does";
}

TEST(Batch, TakesCountsEachEntryOnce) {
  Batch batch;
  Entry& a = batch.add("j", "a", report(EventKind::started));
  Entry& b = batch.add("j", "b", report(EventKind::started));
  EXPECT_EQ(batch.takes(), 0U);
  EXPECT_FALSE(a.takes);
  batch.mark_takes(a);
  batch.mark_takes(batch.add("j", "a", report(EventKind::completed)));
  EXPECT_EQ(batch.takes(), 1U) << "a topic's second report frees no more room";
  EXPECT_TRUE(a.takes);
  EXPECT_FALSE(b.takes);
  batch.mark_takes(b);
  EXPECT_EQ(batch.takes(), 2U);
}

TEST(Batch, AcksAreIndexedInOrder) {
  Batch batch;
  EXPECT_EQ(batch.add_ack(wire::Ack{.client = "p0", .seq = 10}), 0);
  EXPECT_EQ(batch.add_ack(wire::Ack{.client = "p1", .seq = 11}), 1);
  EXPECT_EQ(batch.add_ack(wire::Ack{.client = "p2", .seq = 12}), 2);
  ASSERT_EQ(batch.acks().size(), 3U);
  EXPECT_EQ(batch.acks()[1].client, "p1") << "index 1 is the second ack";
  EXPECT_EQ(batch.acks()[1].seq, 11U);
  EXPECT_FALSE(batch.empty()) << "acks alone are something to send";
}

TEST(Batch, OriginViewsStayValidAcrossManyAdds) {
  Batch batch;
  std::vector<std::string_view> views;
  std::vector<std::string> expected;
  for (int i = 0; i < 5000; ++i) {
    // short (in-place) and long (heap) strings: both must stay where they are
    expected.push_back(i % 2 == 0 ? "w" + std::to_string(i)
                                  : "submission-with-a-long-id-" + std::to_string(i));
    views.push_back(batch.keep_origin(expected.back()));
    Event e = report(EventKind::heartbeat);
    e.origin = views.back();
    batch.add("j", "k" + std::to_string(i % 50), std::move(e));
  }
  for (std::size_t i = 0; i < views.size(); ++i) {
    ASSERT_EQ(views[i], expected[i]) << "origin " << i << " moved";
  }
  for (std::size_t e = 0; e < batch.entry_count(); ++e) {
    for (const auto& event : batch.entry(e).events) {
      EXPECT_FALSE(event.origin.empty()) << "entry " << e;
      EXPECT_TRUE(event.origin[0] == 'w' || event.origin[0] == 's') << "entry " << e;
    }
  }
}

TEST(Batch, ClearForgetsEverything) {
  Batch batch;
  batch.touch(100);
  batch.mark_takes(batch.add("j", "k", report(EventKind::started)));
  (void)batch.add_ack(wire::Ack{.client = "p"});
  batch.add_request(JobRequest{JobRequest::Kind::requeue_failed, "j", "cli"});
  batch.set_new_broker("b2");
  (void)batch.keep_origin("w1");
  ASSERT_FALSE(batch.empty());

  batch.clear();
  EXPECT_TRUE(batch.empty());
  EXPECT_EQ(batch.entry_count(), 0U);
  EXPECT_EQ(batch.events(), 0U);
  EXPECT_EQ(batch.takes(), 0U);
  EXPECT_TRUE(batch.acks().empty());
  EXPECT_TRUE(batch.requests().empty());
  EXPECT_FALSE(batch.new_broker());
  EXPECT_EQ(batch.started_ms(), -1) << "the next batch starts with its first arrival";
}

TEST(Batch, AClearedBatchIsReusedWithoutLeftovers) {
  Batch batch;
  batch.mark_takes(batch.add("a-long-job-name", "k", report(EventKind::started, "old")));
  batch.add("a-long-job-name", "k", report(EventKind::heartbeat, "old"));
  batch.add("j", "key2", report(EventKind::started, "old"));
  batch.clear();

  // the first entry slot is reused by another topic with a shorter job name
  Entry& reused = batch.add("j", "key2", report(EventKind::completed, "new"));
  EXPECT_EQ(reused.job(), "j");
  EXPECT_EQ(reused.key(), "key2");
  EXPECT_EQ(data_of(reused), std::vector<std::string>{"new"}) << "no event of the last batch";
  EXPECT_FALSE(reused.takes) << "takes belonged to the last batch's entry";
  EXPECT_EQ(batch.takes(), 0U);
  Entry& second = batch.add("a-long-job-name", "k", report(EventKind::completed, "new2"));
  EXPECT_NE(&reused, &second) << "a topic of the last batch is a new entry, not merged";
  ASSERT_EQ(batch.entry_count(), 2U);
  EXPECT_EQ(batch.entry(1).job(), "a-long-job-name");
  EXPECT_EQ(data_of(batch.entry(1)), std::vector<std::string>{"new2"});
  EXPECT_EQ(batch.events(), 2U);
}

TEST(Batch, TouchKeepsTheFirstArrival) {
  Batch batch;
  EXPECT_EQ(batch.started_ms(), -1);
  batch.touch(100);
  batch.touch(200);
  EXPECT_EQ(batch.started_ms(), 100) << "the batch's age counts from its first arrival";
}

TEST(Batch, RequestsAndANewBrokerAreSomethingToCommit) {
  Batch with_request;
  with_request.add_request(JobRequest{JobRequest::Kind::requeue_failed, "j1", "c1"});
  with_request.add_request(JobRequest{JobRequest::Kind::requeue_failed, "j2", "c2"});
  EXPECT_FALSE(with_request.empty());
  ASSERT_EQ(with_request.requests().size(), 2U);
  EXPECT_EQ(with_request.requests()[0].job, "j1") << "in arrival order";
  EXPECT_EQ(with_request.requests()[1].client, "c2");

  Batch with_broker;
  with_broker.set_new_broker("instance-2");
  EXPECT_FALSE(with_broker.empty());
  EXPECT_EQ(with_broker.new_broker(), "instance-2");
}

}  // namespace
}  // namespace topicflow::sink
