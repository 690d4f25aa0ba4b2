#pragma once
// The tasks a worker was told to stop because their job was cancelled (the sink's `cancel`
// events): a running one is cancelled at once; one still on its way (in the broker, or in this
// worker's buffers) is dropped when it arrives instead of being run. Entries are remembered for
// a while (the lease: after that the sink has given the attempt up anyway) and at most
// kMaxEntries of them. Pure bookkeeping, time comes in as `now` (steady ms). Not thread-safe.

#include <cstdint>
#include <deque>
#include <set>
#include <string>
#include <string_view>
#include <tuple>

namespace topicflow {

class CancelList {
 public:
  static constexpr std::size_t kMaxEntries = 100000;

  explicit CancelList(std::int64_t ttl_ms) : ttl_ms_(ttl_ms) {}

  void add(std::string_view job, std::string_view key, std::uint32_t attempt, std::int64_t now);
  [[nodiscard]] bool contains(std::string_view job, std::string_view key, std::uint32_t attempt,
                              std::int64_t now);
  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }

 private:
  using Entry = std::tuple<std::string, std::string, std::uint32_t>;
  void prune(std::int64_t now);

  std::int64_t ttl_ms_;
  std::set<Entry, std::less<>> entries_;
  std::deque<std::pair<std::int64_t, Entry>> by_time_;  // when each was added, oldest first
};

}  // namespace topicflow
