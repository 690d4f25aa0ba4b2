#pragma once
// Capped exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And
// Jitter"): delay(n) = uniform(0, min(max, base * 2^n)). Deterministic given the uniform draw,
// so tests can pin the schedule; the convenience overload draws from its own seeded PRNG.
// Not thread-safe (the PRNG); one Backoff per loop.

#include <cstdint>
#include <random>

namespace topicflow {

class Backoff {
 public:
  Backoff(std::int64_t base_ms, std::int64_t max_ms, std::uint64_t seed = std::random_device{}());

  // The cap for the n-th retry (n = 0 for the first): min(max, base * 2^n).
  [[nodiscard]] std::int64_t ceiling(unsigned retry) const noexcept;
  // Full jitter with an explicit draw u in [0, 1).
  [[nodiscard]] std::int64_t delay(unsigned retry, double u) const noexcept;
  // Full jitter with the internal PRNG.
  [[nodiscard]] std::int64_t delay(unsigned retry);

  [[nodiscard]] std::int64_t base_ms() const noexcept { return base_ms_; }
  [[nodiscard]] std::int64_t max_ms() const noexcept { return max_ms_; }

 private:
  std::int64_t base_ms_;
  std::int64_t max_ms_;
  std::mt19937_64 rng_;
};

}  // namespace topicflow
