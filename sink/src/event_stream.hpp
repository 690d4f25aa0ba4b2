#pragma once
// What one client of GET /v1/events (Server-Sent Events, docs/api.md) is sent next, from the
// snapshots the sink's loop publishes after its commits. Pure: the caller (http_api.cpp) waits
// for a newer snapshot, passes it with the time, and writes what comes back.
//   - first: "retry: 2000" (the browser reconnects after 2 s), then every job's counts;
//   - event "job" when a job's counts or paused state changed, at most every 250 ms per job
//     (a change held back goes out with a later call, with the latest counts);
//   - event "deleted" when a job that was sent is gone;
//   - event "sink" (workers, slots, in transit, committed totals, health) every second, which
//     also keeps the connection alive through proxies (no keep-alive comments needed).

#include "sink_metrics.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>

namespace topicflow::sink {

class EventStream {
 public:
  static constexpr std::int64_t kJobEventMs = 250;
  static constexpr std::int64_t kSinkEventMs = 1000;

  // Only `job`'s events when given (the sink's still go out).
  explicit EventStream(std::optional<std::string> job = std::nullopt) : job_(std::move(job)) {}

  // The text to write for snapshot `s` at `now_ms` on a steady clock ("" when nothing is due).
  [[nodiscard]] std::string next(const Snapshot& s, std::int64_t now_ms);

  [[nodiscard]] bool started() const noexcept { return started_; }
  // The version of the last snapshot passed to next(): wait for a newer one.
  [[nodiscard]] std::uint64_t version() const noexcept { return version_; }

 private:
  std::optional<std::string> job_;
  bool started_ = false;
  std::uint64_t version_ = 0;
  std::map<std::string, std::pair<store::StatusCounts, bool>, std::less<>> sent_;
  std::map<std::string, std::int64_t, std::less<>> sent_ms_;
  std::optional<std::int64_t> sink_sent_ms_;  // when the last "sink" event went out
};

}  // namespace topicflow::sink
