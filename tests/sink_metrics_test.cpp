// sink_metrics: Buckets, the Prometheus text of one Snapshot, and health().
#include "sink_metrics.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <sstream>
#include <string>

namespace topicflow::sink {
namespace {

using store::Status;

// The samples of a text exposition: "name{labels}" -> value (comments skipped).
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    EXPECT_NE(space, std::string::npos) << "malformed sample line: " << line;
    if (space == std::string::npos) continue;
    const auto [it, added] = out.emplace(line.substr(0, space), std::stod(line.substr(space + 1)));
    EXPECT_TRUE(added) << "sample rendered twice: " << line;
  }
  return out;
}

// The value of `name` in `s`, or -1 when it is missing (with a failure).
double value(const std::map<std::string, double>& s, const std::string& name) {
  const auto it = s.find(name);
  EXPECT_NE(it, s.end()) << "missing sample " << name;
  return it == s.end() ? -1 : it->second;
}

TEST(Buckets, EachValueCountsInTheFirstBoundAtOrAboveIt) {
  Buckets b({1, 10, 100});
  b.observe(0.5);
  b.observe(1);  // on the bound: le="1"
  b.observe(10.5);
  b.observe(100);
  b.observe(1000);  // above every bound
  EXPECT_EQ(b.counts, (std::vector<std::uint64_t>{2, 0, 2}));
  EXPECT_EQ(b.overflow, 1U);
  EXPECT_EQ(b.count(), 5U) << "every observation, overflow included";
  EXPECT_DOUBLE_EQ(b.sum, 0.5 + 1 + 10.5 + 100 + 1000);
  b.observe(-3);
  EXPECT_EQ(b.counts[0], 3U) << "a negative value is in the first bucket";
  EXPECT_DOUBLE_EQ(b.sum, 1112.0) << "and adds nothing to the sum";
}

TEST(SinkMetrics, RenderedCountersAndGaugesAreTheSnapshots) {
  Snapshot s;
  s.counters = SinkCounters{.messages = 1,
                            .updates = 2,
                            .batches = 3,
                            .busy_retries = 4,
                            .decode_errors = 5,
                            .dispatched = 6,
                            .redelivered = 7,
                            .retried = 8,
                            .duplicates = 9,
                            .stale = 10,
                            .bogus = 11,
                            .guard_refused = 12,
                            .lease_expired = 13};
  s.curve_refused = 14;
  s.in_transit = 15;
  s.buffered = 16;
  s.workers = 17;
  const auto m = samples(render_metrics(s));
  const std::map<std::string, double> expected = {
      {"topicflow_sink_messages_received_total", 1},
      {"topicflow_sink_updates_committed_total", 2},
      {"topicflow_sink_batches_committed_total", 3},
      {"topicflow_sink_busy_retries_total", 4},
      {"topicflow_sink_decode_errors_total", 5},
      {"topicflow_sink_tasks_dispatched_total", 6},
      {"topicflow_sink_tasks_redelivered_total", 7},
      {"topicflow_sink_tasks_retried_total", 8},
      {"topicflow_sink_duplicate_deliveries_total", 9},
      {"topicflow_sink_stale_updates_total", 10},
      {"topicflow_sink_bogus_updates_total", 11},
      {"topicflow_sink_leases_expired_total", 13},
      {"topicflow_sink_curve_refused_total", 14},
      {"topicflow_sink_tasks_in_transit", 15},
      {"topicflow_sink_buffered_updates", 16},
      {"topicflow_sink_workers", 17},
  };
  for (const auto& [name, v] : expected) EXPECT_EQ(value(m, name), v) << name;
}

TEST(SinkMetrics, TopicsGaugeHasEveryStatusOfEveryJob) {
  Snapshot s;
  store::StatusCounts a;
  a[Status::pending] = 4;
  a[Status::running] = 3;
  a[Status::completed] = 2;
  a[Status::failed] = 1;
  store::StatusCounts b;
  b[Status::completed] = 9;
  s.counts.emplace("a", a);
  s.counts.emplace("we\"ird\\job", b);
  const auto text = render_metrics(s);
  const auto m = samples(text);
  EXPECT_EQ(value(m, R"(topicflow_topics{job="a",status="pending"})"), 4);
  EXPECT_EQ(value(m, R"(topicflow_topics{job="a",status="running"})"), 3);
  EXPECT_EQ(value(m, R"(topicflow_topics{job="a",status="completed"})"), 2);
  EXPECT_EQ(value(m, R"(topicflow_topics{job="a",status="failed"})"), 1);
  EXPECT_EQ(value(m, R"(topicflow_topics{job="we\"ird\\job",status="completed"})"), 9)
      << "the job label is escaped:\n"
      << text;
  EXPECT_EQ(value(m, R"(topicflow_topics{job="we\"ird\\job",status="pending"})"), 0)
      << "a zero count is still a sample";
}

TEST(SinkMetrics, HistogramsAreCumulativeAndCountEveryObservation) {
  Snapshot s;
  for (const double v : {1.0, 5.0, 50.0, 50.0, 20000.0}) s.batch_size.observe(v);
  s.commit_seconds.observe(0.0001);
  s.commit_seconds.observe(2.0);
  const auto text = render_metrics(s);
  const auto m = samples(text);
  EXPECT_EQ(value(m, R"(topicflow_sink_batch_size_bucket{le="1"})"), 1) << text;
  EXPECT_EQ(value(m, R"(topicflow_sink_batch_size_bucket{le="10"})"), 2);
  EXPECT_EQ(value(m, R"(topicflow_sink_batch_size_bucket{le="100"})"), 4);
  EXPECT_EQ(value(m, R"(topicflow_sink_batch_size_bucket{le="10000"})"), 4);
  EXPECT_EQ(value(m, R"(topicflow_sink_batch_size_bucket{le="+Inf"})"), 5);
  EXPECT_EQ(value(m, "topicflow_sink_batch_size_count"), 5);
  EXPECT_EQ(value(m, "topicflow_sink_batch_size_count"), static_cast<double>(s.batch_size.count()));
  EXPECT_DOUBLE_EQ(value(m, "topicflow_sink_batch_size_sum"), 20106.0);
  EXPECT_EQ(value(m, R"(topicflow_sink_commit_seconds_bucket{le="0.0005"})"), 1) << text;
  EXPECT_EQ(value(m, R"(topicflow_sink_commit_seconds_bucket{le="1"})"), 1);
  EXPECT_EQ(value(m, R"(topicflow_sink_commit_seconds_bucket{le="+Inf"})"), 2);
  EXPECT_EQ(value(m, "topicflow_sink_commit_seconds_count"), 2);
}

TEST(SinkHealth, HealthyWhileTheDatabaseTakesCommits) {
  Snapshot s;
  EXPECT_EQ(health(s, 1'000'000), "");
  EXPECT_EQ(health(s, 1'000'000, 0), "") << "a zero grace changes nothing while available";
}

TEST(SinkHealth, BusyWithinTheGraceIsHealthyBeyondItIsNot) {
  Snapshot s;
  s.unavailable_since_ms = 1000;
  s.unavailable_busy = true;
  EXPECT_EQ(health(s, 1000 + 30000), "") << "busy for exactly the default grace";
  const auto reason = health(s, 1000 + 30001);
  EXPECT_FALSE(reason.empty()) << "busy for longer than the grace";
  EXPECT_NE(reason.find("busy"), std::string::npos) << reason;
  EXPECT_NE(reason.find("30 s"), std::string::npos) << "says for how long: " << reason;

  EXPECT_EQ(health(s, 1500, 1000), "") << "500 ms into a 1 s grace";
  EXPECT_NE(health(s, 2500, 1000), "") << "1.5 s into a 1 s grace";
}

// A full disk or an I/O error is no passing contention: unhealthy at once, with the reason and
// what the sink holds.
TEST(SinkHealth, AnUnavailableDatabaseIsUnhealthyAtOnce) {
  Snapshot s;
  s.unavailable_since_ms = 1000;
  s.unavailable_reason = "database or disk is full";
  s.buffered = 1234;
  const auto reason = health(s, 1001);
  EXPECT_NE(reason.find("unavailable"), std::string::npos) << reason;
  EXPECT_NE(reason.find("database or disk is full"), std::string::npos) << reason;
  EXPECT_NE(reason.find("1234 updates"), std::string::npos) << reason;
  const auto text = render_metrics(s);
  EXPECT_NE(text.find("topicflow_sink_database_unavailable 1"), std::string::npos) << text;
}

TEST(SinkMetrics, SharedSnapshotHandsOutWhatWasPublished) {
  SharedSnapshot shared;
  EXPECT_EQ(shared.read().counters.batches, 0U);
  Snapshot s;
  s.counters.batches = 42;
  s.batch_size.observe(3);
  shared.publish(s);
  const auto read = shared.read();
  EXPECT_EQ(read.counters.batches, 42U);
  EXPECT_EQ(read.batch_size.count(), 1U);
}

}  // namespace
}  // namespace topicflow::sink
