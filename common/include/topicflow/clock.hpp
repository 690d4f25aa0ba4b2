#pragma once
#include <chrono>
#include <cstdint>

namespace topicflow {
// Wall clock, ms since the Unix epoch: what the database stores (updated_at, due times), so
// that a restarted sink resumes leases and retry schedules from the same clock.
[[nodiscard]] inline std::int64_t now_ms() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
// Monotonic clock for in-process timers and durations.
[[nodiscard]] inline std::int64_t steady_ms() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
[[nodiscard]] inline std::int64_t steady_us() noexcept {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace topicflow
