#pragma once
#include <atomic>
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

// Time as an input (STYLE.md): a loop whose timers are policy (flush delays, heartbeats,
// deadlines, grace periods) reads them from a Clock, so a test can move time instead of sleeping.
// Thread-safe.
class Clock {
 public:
  Clock() = default;
  virtual ~Clock() = default;
  Clock(const Clock&) = delete;
  Clock& operator=(const Clock&) = delete;

  // Monotonic milliseconds.
  [[nodiscard]] virtual std::int64_t steady_ms() const noexcept = 0;
  // Wall-clock milliseconds since the Unix epoch (what the database stores: due times, leases).
  [[nodiscard]] virtual std::int64_t wall_ms() const noexcept { return topicflow::now_ms(); }
  // For a loop that sleeps in poll() until its next timer: a descriptor that becomes readable
  // when the time was moved by hand (put it in the poll set, call drain_wake() when it fired);
  // -1 for a clock whose time moves by itself.
  [[nodiscard]] virtual int wake_fd() const noexcept { return -1; }
  virtual void drain_wake() const noexcept {}
};

// The steady clock (topicflow::steady_ms()).
[[nodiscard]] const Clock& steady_clock() noexcept;

// A clock that moves only when a test says so. Its wake_fd() turns readable on every advance(),
// so a loop polling it re-reads its timers at once.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(std::int64_t start_ms = 1000000);
  ~ManualClock() override;
  ManualClock(const ManualClock&) = delete;  // (owns its wake descriptor)
  ManualClock& operator=(const ManualClock&) = delete;

  [[nodiscard]] std::int64_t steady_ms() const noexcept override;
  // The wall clock moves with the steady one, from the real wall time at construction.
  [[nodiscard]] std::int64_t wall_ms() const noexcept override;
  [[nodiscard]] int wake_fd() const noexcept override { return wake_fd_; }
  void drain_wake() const noexcept override;
  // Moves the time forward by `ms` and wakes the loops that poll wake_fd().
  void advance(std::int64_t ms) noexcept;

 private:
  std::atomic<std::int64_t> now_ms_;
  std::int64_t start_ms_;
  std::int64_t wall_at_start_ms_;
  int wake_fd_ = -1;
};

}  // namespace topicflow
