// The transit timeout (sink/src/transit_timeout.hpp): how long a task handed out may take to
// start before the sink sends it again, following the observed start latency like TCP's RTO.

#include "transit_timeout.hpp"

#include <gtest/gtest.h>

namespace topicflow::sink {
namespace {

TEST(TransitTimeout, IsTheCapUntilATaskWasSeenStarting) {
  TransitTimeout t(60000);
  EXPECT_EQ(t.ms(), 60000) << "no sample: as conservative as --dispatch-timeout-ms";
  EXPECT_EQ(t.samples(), 0U);
}

TEST(TransitTimeout, FollowsShortStartsDownToTheFloor) {
  TransitTimeout t(60000, 1000);
  for (int i = 0; i < 50; ++i) t.observe(10);
  EXPECT_EQ(t.ms(), 1000) << "10 ms starts: srtt 10 + 4 x ~0 is below the floor";
  EXPECT_NEAR(t.smoothed_ms(), 10.0, 0.5);
}

TEST(TransitTimeout, FollowsSlowStartsUpAndIsCapped) {
  TransitTimeout t(60000, 1000);
  for (int i = 0; i < 50; ++i) t.observe(5000);  // tasks wait ~5 s behind a running one
  EXPECT_GE(t.ms(), 5000) << "never below what starts take";
  EXPECT_LE(t.ms(), 6000) << "a steady latency has little variation left";
  for (int i = 0; i < 50; ++i) t.observe(10 * 60 * 1000);
  EXPECT_EQ(t.ms(), 60000) << "capped by --dispatch-timeout-ms";
}

TEST(TransitTimeout, VariationWidensTheMargin) {
  TransitTimeout steady(60000, 1);
  TransitTimeout jittery(60000, 1);
  for (int i = 0; i < 100; ++i) {
    steady.observe(200);
    jittery.observe(i % 2 == 0 ? 20 : 380);  // the same mean, much more spread
  }
  EXPECT_NEAR(steady.smoothed_ms(), 200.0, 5.0);
  EXPECT_NEAR(jittery.smoothed_ms(), 200.0, 40.0);
  EXPECT_GT(jittery.ms(), steady.ms() + 300) << "4 x rttvar: the spread sets the margin";
}

// Karn's algorithm: each round of resends lost again doubles the timeout (tasks that only wait
// behind slow ones are not sent again and again), and a clean sample undoes it.
TEST(TransitTimeout, ResendsBackOffUntilACleanSample) {
  TransitTimeout t(60000, 1000);
  for (int i = 0; i < 20; ++i) t.observe(10);
  ASSERT_EQ(t.ms(), 1000);
  std::int64_t now = 0;
  t.back_off(now);
  EXPECT_EQ(t.ms(), 2000);
  t.back_off(now += 2000);
  t.back_off(now += 4000);
  EXPECT_EQ(t.ms(), 8000);
  for (int i = 0; i < 10; ++i) t.back_off(now += 60000);
  EXPECT_EQ(t.ms(), 60000) << "never above the cap (64 x at most)";
  t.observe(10);
  EXPECT_EQ(t.ms(), 1000) << "a clean sample: back to the estimate";
}

// Tasks lost together are found a few milliseconds apart: one round, one doubling.
TEST(TransitTimeout, OneDoublingPerIntervalAtMost) {
  TransitTimeout t(60000, 1000);
  t.observe(10);
  ASSERT_EQ(t.ms(), 1000);
  for (std::int64_t now = 5000; now < 5060; now += 10) t.back_off(now);
  EXPECT_EQ(t.ms(), 2000) << "six losses within one interval";
  t.back_off(5000 + 1999);
  EXPECT_EQ(t.ms(), 2000);
  t.back_off(5000 + 2000);
  EXPECT_EQ(t.ms(), 4000) << "the next interval: the next round";
}

TEST(TransitTimeout, AFloorAboveTheCapIsTheCap) {
  TransitTimeout t(500, 1000);
  t.observe(1);
  EXPECT_EQ(t.ms(), 500);
}

}  // namespace
}  // namespace topicflow::sink
