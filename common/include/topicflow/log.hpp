#pragma once
// Logging: spdlog to stderr, one logger per process named after its role.

#include <spdlog/spdlog.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace topicflow {

// Throws std::invalid_argument on an unknown level (trace, debug, info, warn, error, critical,
// off).
void init_logging(std::string_view role, std::string_view level);

// A warning that repeats at most once per interval, with the count of what it swallowed, so a
// flood of garbage cannot turn into a flood of log lines. Not thread-safe.
class RateLimitedLog {
 public:
  explicit RateLimitedLog(std::int64_t interval_ms = 1000) : interval_ms_(interval_ms) {}
  // Counts one event; logs `message` if the interval has passed since the last line.
  void warn(std::string_view message);
  [[nodiscard]] std::uint64_t total() const noexcept { return total_; }

 private:
  std::int64_t interval_ms_;
  std::int64_t last_ms_ = -1'000'000'000;
  std::uint64_t total_ = 0;
  std::uint64_t suppressed_ = 0;
};

}  // namespace topicflow
