// RowsInFlight: rows in transit (dispatch timeouts) and running rows (leases), in memory.
#include "rows_in_flight.hpp"

#include "row_id.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace topicflow::sink {
namespace {

using store::Status;

// A task handed out at `sent` with dispatch timeout `timeout`.
Row in_transit(std::int64_t rowid, std::int64_t timeout, std::int64_t sent = 0) {
  Row row;
  row.exists = true;
  row.status = Status::pending;
  row.attempts = 1;
  // (the rows in flight order tasks in transit by when they were sent; these tests give the
  // timeout as the send time unless they say otherwise)
  row.sent_at = sent != 0 ? sent : timeout;
  row.due_at = timeout;
  row.rowid = rowid;
  return row;
}

// A running row whose lease ends at `lease`.
Row running(std::int64_t rowid, std::int64_t lease, std::string worker = "w1") {
  Row row;
  row.exists = true;
  row.status = Status::running;
  row.attempts = 1;
  row.due_at = lease;
  row.worker = std::move(worker);
  row.rowid = rowid;
  return row;
}

std::string id(std::int64_t n) { return row_id("job", "k" + std::to_string(n)); }

std::string describe(const std::vector<std::string>& ids) {
  std::string s;
  for (const auto& i : ids) s += std::string(id_key(i)) + " ";
  return s;
}

TEST(RowsInFlight, PutFindAndForget) {
  RowsInFlight rows;
  EXPECT_EQ(rows.find(id(1)), nullptr) << "empty";
  rows.put(id(1), running(11, 500, "w7"));
  const Row* found = rows.find(id(1));
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->rowid, 11);
  EXPECT_EQ(found->status, Status::running);
  EXPECT_EQ(found->due_at, 500);
  EXPECT_EQ(found->worker, "w7");
  EXPECT_EQ(rows.size(), 1U);
  const std::string* stable = rows.id_of(id(1));
  ASSERT_NE(stable, nullptr);
  EXPECT_EQ(*stable, id(1));
  EXPECT_EQ(rows.id_of(id(2)), nullptr);

  rows.put(id(1), std::nullopt);
  EXPECT_EQ(rows.find(id(1)), nullptr) << "forgotten";
  EXPECT_EQ(rows.size(), 0U);
  EXPECT_FALSE(rows.next_lease_due()) << "a forgotten row leaves no lease behind";
  rows.put(id(3), std::nullopt);  // forgetting an unknown row is harmless
  EXPECT_EQ(rows.size(), 0U);
}

TEST(RowsInFlight, PutKeepsTheCommittedStateOnly) {
  RowsInFlight rows;
  auto row = running(1, 500);
  row.new_payload = "payload";
  row.new_result = "result";
  row.changed = true;
  row.requeued = true;
  rows.put(id(1), row);
  const Row* found = rows.find(id(1));
  ASSERT_NE(found, nullptr);
  EXPECT_FALSE(found->new_payload) << "nothing is left to write for a cached row";
  EXPECT_FALSE(found->new_result);
  EXPECT_FALSE(found->changed);
  EXPECT_FALSE(found->requeued);
  EXPECT_EQ(found->due_at, 500) << "the rest is kept";
}

TEST(RowsInFlight, CountsTasksInTransitAndTheirEarliestTimeout) {
  RowsInFlight rows;
  EXPECT_EQ(rows.in_transit(), 0);
  EXPECT_FALSE(rows.oldest_transit_sent());
  rows.put(id(1), in_transit(1, 300));
  rows.put(id(2), in_transit(2, 100));
  rows.put(id(3), in_transit(3, 200));
  rows.put(id(4), running(4, 50));  // not in transit: its lease is earlier still
  EXPECT_EQ(rows.in_transit(), 3);
  EXPECT_EQ(rows.oldest_transit_sent(), 100) << "a running row's lease is not a dispatch timeout";
  EXPECT_EQ(rows.next_lease_due(), 50) << "a dispatch timeout is not a lease";
  EXPECT_EQ(rows.size(), 4U);
}

TEST(RowsInFlight, ForgetTransitReturnsExactlyTheDueOnesAndRemovesThem) {
  RowsInFlight rows;
  rows.put(id(1), in_transit(1, 100, 7));
  rows.put(id(3), in_transit(3, 200));
  rows.put(id(2), in_transit(2, 200));
  rows.put(id(4), in_transit(4, 201));
  rows.put(id(5), running(5, 10));

  const auto forgotten = rows.forget_transit(200);
  std::vector<std::string> ids;
  for (const auto& [i, row] : forgotten) ids.push_back(i);
  EXPECT_EQ(ids, (std::vector<std::string>{id(1), id(2), id(3)}))
      << "timeouts at or before 200, by (timeout, rowid): " << describe(ids);
  ASSERT_FALSE(forgotten.empty());
  EXPECT_EQ(forgotten[0].second.rowid, 1) << "the row as it was in transit";
  EXPECT_EQ(forgotten[0].second.sent_at, 7);
  EXPECT_TRUE(forgotten[0].second.in_transit());

  EXPECT_EQ(rows.in_transit(), 1);
  EXPECT_EQ(rows.oldest_transit_sent(), 201);
  for (int n = 1; n <= 3; ++n) EXPECT_EQ(rows.find(id(n)), nullptr) << "row " << n;
  EXPECT_NE(rows.find(id(4)), nullptr) << "due at 201, after `until`";
  EXPECT_NE(rows.find(id(5)), nullptr) << "running rows are not in transit";
  EXPECT_EQ(rows.next_lease_due(), 10);
  EXPECT_EQ(rows.size(), 2U);

  EXPECT_TRUE(rows.forget_transit(200).empty()) << "nothing left due at 200";
  const auto rest = rows.forget_transit(std::numeric_limits<std::int64_t>::max());
  ASSERT_EQ(rest.size(), 1U) << "a new broker: every task in transit";
  EXPECT_EQ(rest[0].first, id(4));
  EXPECT_EQ(rows.in_transit(), 0);
  EXPECT_FALSE(rows.oldest_transit_sent());
}

TEST(RowsInFlight, ExpiredLeasesAreEarliestFirstAndLimited) {
  RowsInFlight rows;
  rows.put(id(1), running(1, 400));
  rows.put(id(2), running(2, 100));
  rows.put(id(3), running(3, 300));
  rows.put(id(4), running(4, 200));
  rows.put(id(6), running(6, 200));
  rows.put(id(5), in_transit(5, 50));  // a dispatch timeout is not a lease

  EXPECT_EQ(rows.next_lease_due(), 100);
  const auto all = rows.expired_leases(300, 100);
  EXPECT_EQ(all, (std::vector<std::string>{id(2), id(4), id(6), id(3)})) << describe(all);
  const auto two = rows.expired_leases(300, 2);
  EXPECT_EQ(two, (std::vector<std::string>{id(2), id(4)})) << describe(two);
  EXPECT_TRUE(rows.expired_leases(99, 100).empty()) << "no lease ends by 99";
  EXPECT_TRUE(rows.expired_leases(1000, 0).empty()) << "limit 0";
  EXPECT_EQ(rows.size(), 6U) << "expired_leases only reads";
  EXPECT_EQ(rows.next_lease_due(), 100);
}

TEST(RowsInFlight, AHeartbeatMovingALeaseLaterLeavesNoOldTimer) {
  RowsInFlight rows;
  rows.put(id(1), running(1, 100));
  rows.put(id(2), running(2, 300));
  rows.put(id(1), running(1, 500));  // heartbeat: the lease now ends at 500
  EXPECT_EQ(rows.size(), 2U);
  EXPECT_EQ(rows.next_lease_due(), 300) << "the old lease of row 1 (100) must be gone";
  const auto expired = rows.expired_leases(400, 100);
  EXPECT_EQ(expired, std::vector<std::string>{id(2)}) << describe(expired);
  const auto later = rows.expired_leases(500, 100);
  EXPECT_EQ(later, (std::vector<std::string>{id(2), id(1)}))
      << "row 1 once, at its new lease: " << describe(later);
}

TEST(RowsInFlight, AStartedTaskLeavesTransitAndHoldsALease) {
  RowsInFlight rows;
  rows.put(id(1), in_transit(1, 100));
  rows.put(id(1), running(1, 900));
  EXPECT_EQ(rows.in_transit(), 0);
  EXPECT_FALSE(rows.oldest_transit_sent()) << "the dispatch timeout of a started task is gone";
  EXPECT_EQ(rows.next_lease_due(), 900);
  EXPECT_TRUE(rows.forget_transit(std::numeric_limits<std::int64_t>::max()).empty());
  ASSERT_NE(rows.find(id(1)), nullptr) << "forget_transit must not drop a running row";
  EXPECT_EQ(rows.find(id(1))->status, Status::running);
}

TEST(RowsInFlight, ARowGivenBackLeavesItsLease) {
  RowsInFlight rows;
  rows.put(id(1), running(1, 100));
  auto ready = running(1, 100);
  ready.status = Status::pending;  // released: ready again, not cacheable, but put anyway
  rows.put(id(1), ready);
  EXPECT_FALSE(rows.next_lease_due()) << "a pending row holds no lease";
  EXPECT_TRUE(rows.expired_leases(1000, 10).empty());
  EXPECT_EQ(rows.in_transit(), 0) << "pending without sent_at is not in transit";
}

TEST(RowsInFlight, TimersSurviveTheMapGrowing) {
  // The timer maps hold pointers to the rows' keys: they must stay valid as the map rehashes.
  RowsInFlight rows;
  constexpr int kRows = 2000;
  for (int n = 0; n < kRows; ++n) {
    if (n % 2 == 0) {
      rows.put(id(n), in_transit(n, 10'000 + n));
    } else {
      rows.put(id(n), running(n, 20'000 + n));
    }
  }
  EXPECT_EQ(rows.in_transit(), kRows / 2);
  const auto leases = rows.expired_leases(20'000 + kRows, kRows);
  ASSERT_EQ(leases.size(), static_cast<std::size_t>(kRows / 2));
  for (std::size_t i = 0; i < leases.size(); ++i) {
    EXPECT_EQ(leases[i], id(static_cast<int>(2 * i + 1))) << "lease " << i;
  }
  const auto forgotten = rows.forget_transit(10'000 + kRows);
  ASSERT_EQ(forgotten.size(), static_cast<std::size_t>(kRows / 2));
  for (std::size_t i = 0; i < forgotten.size(); ++i) {
    EXPECT_EQ(forgotten[i].first, id(static_cast<int>(2 * i))) << "transit " << i;
    EXPECT_EQ(forgotten[i].second.rowid, static_cast<std::int64_t>(2 * i)) << "transit " << i;
  }
  EXPECT_EQ(rows.size(), static_cast<std::size_t>(kRows / 2));
}

TEST(RowsInFlight, CacheableRowsAreRunningOrInTransit) {
  EXPECT_TRUE(RowsInFlight::cacheable(running(1, 100)));
  EXPECT_TRUE(RowsInFlight::cacheable(in_transit(1, 100)));
  auto ready = in_transit(1, 100);
  ready.sent_at.reset();
  EXPECT_FALSE(RowsInFlight::cacheable(ready)) << "ready: read from the database when needed";
  auto done = running(1, 100);
  done.status = Status::completed;
  EXPECT_FALSE(RowsInFlight::cacheable(done));
  auto missing = running(1, 100);
  missing.exists = false;
  EXPECT_FALSE(RowsInFlight::cacheable(missing));
}

TEST(RowsInFlight, ForEachVisitsEveryRow) {
  RowsInFlight rows;
  rows.put(id(1), running(1, 100, "w1"));
  rows.put(id(2), running(2, 100, "w2"));
  rows.put(id(3), in_transit(3, 100));
  std::vector<std::int64_t> seen;
  rows.for_each([&](std::string_view i, const Row& row) {
    EXPECT_EQ(i, id(row.rowid)) << "id and row belong together";
    seen.push_back(row.rowid);
  });
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::int64_t>{1, 2, 3}));
}

}  // namespace
}  // namespace topicflow::sink
