// StatsLine: one line per interval, only when something happened in it, with the interval's rate.
#include "stats_line.hpp"

#include <topicflow/sink.hpp>

#include <gtest/gtest.h>

#include <string>

namespace topicflow::sink {
namespace {

TEST(StatsLine, NothingBeforeTheIntervalIsOver) {
  StatsLine stats(10000);
  stats.start(1000);
  SinkCounters counters;
  counters.updates = 50;
  EXPECT_FALSE(stats.take(10999, counters, 0, 0).has_value()) << "9.999 s into a 10 s interval";
  const auto line = stats.take(11000, counters, 3, 2);
  ASSERT_TRUE(line.has_value());
  EXPECT_TRUE(line->starts_with("rate: 5 updates/s over 10 s;")) << *line;
  EXPECT_NE(line->find("3 unfinished, 2 in transit"), std::string::npos) << *line;
}

TEST(StatsLine, RateCountsOnlyTheIntervalsUpdates) {
  StatsLine stats(1000);
  stats.start(0);
  SinkCounters counters;
  counters.updates = 100;
  counters.batches = 4;
  ASSERT_TRUE(stats.take(1000, counters, 0, 0).has_value());
  counters.updates = 400;
  const auto line = stats.take(3000, counters, 0, 0);
  ASSERT_TRUE(line.has_value());
  EXPECT_TRUE(line->starts_with("rate: 150 updates/s over 2 s; 4 batches")) << *line;
}

TEST(StatsLine, AQuietIntervalLogsNothingButStartsTheNext) {
  StatsLine stats(1000);
  stats.start(0);
  SinkCounters counters;
  EXPECT_FALSE(stats.take(1000, counters, 5, 0).has_value()) << "no updates, no bad messages";
  counters.updates = 10;
  EXPECT_FALSE(stats.take(1999, counters, 5, 0).has_value()) << "the next interval began at 1000";
  const auto line = stats.take(2000, counters, 5, 0);
  ASSERT_TRUE(line.has_value());
  EXPECT_TRUE(line->starts_with("rate: 10 updates/s over 1 s;")) << *line;
}

TEST(StatsLine, BadMessagesAloneAreWorthALine) {
  StatsLine stats(1000);
  stats.start(0);
  SinkCounters counters;
  counters.decode_errors = 1;
  const auto line = stats.take(1000, counters, 0, 0);
  ASSERT_TRUE(line.has_value());
  EXPECT_NE(line->find("1 bad messages in total"), std::string::npos) << *line;
  EXPECT_FALSE(stats.take(2000, counters, 0, 0).has_value()) << "no new bad message since";
}

}  // namespace
}  // namespace topicflow::sink
