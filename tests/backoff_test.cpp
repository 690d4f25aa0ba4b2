// Unit tests of Backoff (common/src/backoff.cpp): capped exponential ceilings, full jitter within
// [0, ceiling], a schedule pinned by explicit draws, and determinism for a given seed.

#include <topicflow/backoff.hpp>

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <vector>

using topicflow::Backoff;

TEST(Backoff, CeilingDoublesFromBaseAndCapsAtMax) {
  const Backoff backoff(100, 5000, 1);
  const std::vector<std::int64_t> expected = {100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000};
  for (unsigned retry = 0; retry < expected.size(); ++retry) {
    EXPECT_EQ(backoff.ceiling(retry), expected[retry]) << "retry " << retry;
  }
  EXPECT_EQ(backoff.ceiling(1000), 5000) << "a huge retry number stays at the cap";
  EXPECT_EQ(backoff.ceiling(std::numeric_limits<unsigned>::max()), 5000) << "retry UINT_MAX";
  EXPECT_EQ(backoff.base_ms(), 100);
  EXPECT_EQ(backoff.max_ms(), 5000);
}

TEST(Backoff, CeilingIsMonotonic) {
  const Backoff backoff(7, 1'000'000, 1);
  for (unsigned retry = 1; retry < 100; ++retry) {
    EXPECT_GE(backoff.ceiling(retry), backoff.ceiling(retry - 1)) << "retry " << retry;
    EXPECT_LE(backoff.ceiling(retry), 1'000'000) << "retry " << retry;
  }
}

TEST(Backoff, DegenerateParameters) {
  EXPECT_EQ(Backoff(0, 1000, 1).ceiling(5), 0) << "base 0 never waits";
  EXPECT_EQ(Backoff(100, 0, 1).ceiling(5), 0) << "max 0 never waits";
  EXPECT_EQ(Backoff(100, 50, 1).ceiling(0), 50) << "max below base caps the first retry too";
  EXPECT_EQ(Backoff(-5, -5, 1).ceiling(3), 0) << "negative parameters are treated as 0";
  Backoff zero(0, 0, 1);
  for (unsigned retry = 0; retry < 10; ++retry)
    EXPECT_EQ(zero.delay(retry), 0) << "retry " << retry;
}

TEST(Backoff, HugeMaxDoesNotOverflow) {
  // A cap near INT64_MAX must not make the doubling overflow (UB that UBSan reports).
  const auto max = std::numeric_limits<std::int64_t>::max();
  const Backoff backoff(1, max, 1);
  EXPECT_EQ(backoff.ceiling(10), 1024);
  EXPECT_EQ(backoff.ceiling(62), std::int64_t{1} << 62U);
  EXPECT_EQ(backoff.ceiling(63), max) << "2^63 does not fit: capped";
  EXPECT_EQ(backoff.ceiling(200), max);
  EXPECT_EQ(backoff.delay(200, 0.0), 0);
  EXPECT_EQ(backoff.delay(200, 1.0), max) << "u = 1 (clamped) gives exactly the ceiling";
  const auto almost = backoff.delay(200, 0.999999);
  EXPECT_GT(almost, 0);
  EXPECT_LE(almost, max);
}

TEST(Backoff, DelayWithExplicitDrawStaysWithinCeiling) {
  const Backoff backoff(100, 10'000, 1);
  for (unsigned retry = 0; retry < 12; ++retry) {
    const auto ceiling = backoff.ceiling(retry);
    EXPECT_EQ(backoff.delay(retry, 0.0), 0) << "retry " << retry;
    EXPECT_EQ(backoff.delay(retry, 1.0), ceiling) << "retry " << retry;
    EXPECT_LE(backoff.delay(retry, 0.9999999), ceiling) << "retry " << retry;
    EXPECT_EQ(backoff.delay(retry, -3.0), 0) << "retry " << retry << ": draws below 0 are clamped";
    EXPECT_EQ(backoff.delay(retry, 7.0), ceiling)
        << "retry " << retry << ": draws above 1 are clamped";
    EXPECT_EQ(backoff.delay(retry, std::numeric_limits<double>::quiet_NaN()), 0)
        << "retry " << retry << ": a NaN draw waits 0, not an undefined cast";
    EXPECT_EQ(backoff.delay(retry, std::numeric_limits<double>::infinity()), ceiling)
        << "retry " << retry;
  }
}

TEST(Backoff, PinnedScheduleWithExplicitDraws) {
  const Backoff backoff(100, 1000, 1);
  // Draws that are exact in binary, so the expected values are exact too.
  const std::vector<double> draws = {0.5, 0.25, 0.75, 0.125, 0.875, 0.5, 0.0625};
  const std::vector<std::int64_t> expected = {50, 50, 300, 100, 875, 500, 62};
  for (unsigned retry = 0; retry < draws.size(); ++retry) {
    EXPECT_EQ(backoff.delay(retry, draws[retry]), expected[retry])
        << "retry " << retry << " (ceiling " << backoff.ceiling(retry) << ", u " << draws[retry]
        << ")";
  }
}

TEST(Backoff, RandomDelaysStayWithinCeiling) {
  Backoff backoff(10, 2000, 42);
  for (int i = 0; i < 10000; ++i) {
    const auto retry = static_cast<unsigned>(i % 12);
    const auto delay = backoff.delay(retry);
    ASSERT_GE(delay, 0) << "draw " << i << ", retry " << retry;
    ASSERT_LE(delay, backoff.ceiling(retry)) << "draw " << i << ", retry " << retry;
  }
}

TEST(Backoff, FullJitterSpreadsOverTheWholeRange) {
  // Full jitter: uniform over [0, ceiling], so the mean is about half the ceiling and both ends of
  // the range are reached. Deterministic thanks to the fixed seed.
  Backoff backoff(1000, 1000, 2024);
  double sum = 0;
  std::int64_t lowest = 1000;
  std::int64_t highest = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const auto delay = backoff.delay(0);
    sum += static_cast<double>(delay);
    lowest = std::min(lowest, delay);
    highest = std::max(highest, delay);
  }
  const double mean = sum / n;
  EXPECT_NEAR(mean, 500.0, 25.0) << "mean of " << n << " full-jitter delays with ceiling 1000";
  EXPECT_LT(lowest, 50) << "the low end of the range is reached";
  EXPECT_GT(highest, 950) << "the high end of the range is reached";
}

TEST(Backoff, SameSeedSameSchedule) {
  Backoff a(50, 30'000, 99);
  Backoff b(50, 30'000, 99);
  for (unsigned retry = 0; retry < 200; ++retry) {
    ASSERT_EQ(a.delay(retry % 16), b.delay(retry % 16)) << "draw " << retry;
  }
}

TEST(Backoff, DifferentSeedsDifferentSchedules) {
  Backoff a(50, 30'000, 1);
  Backoff b(50, 30'000, 2);
  int differing = 0;
  for (unsigned retry = 0; retry < 100; ++retry) {
    if (a.delay(10) != b.delay(10)) ++differing;
  }
  EXPECT_GT(differing, 90) << "two seeds should give (almost) entirely different draws";
}
