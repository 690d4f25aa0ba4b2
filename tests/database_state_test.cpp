// The sink's database state (sink/src/database_state.hpp): a busy or unavailable database is a
// wait with a capped backoff, and the state says since when and why.

#include "database_state.hpp"

#include <gtest/gtest.h>

namespace topicflow::sink {
namespace {

TEST(DatabaseState, BacksOffWithinTheCappedCeilingAndRemembersSinceWhen) {
  const Backoff ceilings(10, 2000, 1);
  DatabaseState state(Backoff(10, 2000, 42));
  EXPECT_FALSE(state.backing_off(0));
  EXPECT_EQ(state.kind(), DatabaseState::Kind::writable);
  std::int64_t now = 1000;
  for (unsigned n = 0; n < 12; ++n) {
    state.failed(DatabaseState::Kind::busy, "database is locked", 5, now);
    const auto delay = state.retry_at() - now;
    EXPECT_GE(delay, 1) << "retry " << n;
    EXPECT_LE(delay, ceilings.ceiling(n)) << "retry " << n << ": full jitter under the ceiling";
    EXPECT_TRUE(state.backing_off(state.retry_at() - 1));
    EXPECT_FALSE(state.backing_off(state.retry_at()));
    now = state.retry_at();
  }
  EXPECT_EQ(state.kind(), DatabaseState::Kind::busy);
  EXPECT_EQ(state.attempts(), 12U);
  EXPECT_EQ(state.since(), 1000) << "stuck since the first failure";
}

TEST(DatabaseState, AFullDiskIsUnavailableWithItsReasonUntilACommitGoesThrough) {
  DatabaseState state(Backoff(10, 2000, 7));
  state.failed(DatabaseState::Kind::unavailable, "database or disk is full", 20000, 500);
  EXPECT_EQ(state.kind(), DatabaseState::Kind::unavailable);
  EXPECT_EQ(state.reason(), "database or disk is full");
  state.failed(DatabaseState::Kind::unavailable, "database or disk is full", 20000, 600);
  EXPECT_EQ(state.attempts(), 2U);
  state.succeeded(5000);
  EXPECT_EQ(state.kind(), DatabaseState::Kind::writable);
  EXPECT_EQ(state.since(), 0);
  EXPECT_EQ(state.retry_at(), 0);
  EXPECT_EQ(state.attempts(), 0U);
  EXPECT_TRUE(state.reason().empty());
  EXPECT_FALSE(state.backing_off(5001));
}

}  // namespace
}  // namespace topicflow::sink
