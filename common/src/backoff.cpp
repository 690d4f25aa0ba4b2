#include <topicflow/backoff.hpp>

#include <algorithm>
#include <cmath>

namespace topicflow {

Backoff::Backoff(std::int64_t base_ms, std::int64_t max_ms, std::uint64_t seed)
    : base_ms_(std::max<std::int64_t>(base_ms, 0)),
      max_ms_(std::max<std::int64_t>(max_ms, 0)),
      rng_(seed) {}

std::int64_t Backoff::ceiling(unsigned retry) const noexcept {
  if (base_ms_ == 0) return 0;
  std::int64_t value = base_ms_;
  // Stop doubling before it can pass max_ms_: with a cap near INT64_MAX, value * 2 would overflow.
  for (unsigned i = 0; i < retry && value < max_ms_; ++i)
    value = value > max_ms_ / 2 ? max_ms_ : value * 2;
  return std::min(value, max_ms_);
}

std::int64_t Backoff::delay(unsigned retry, double u) const noexcept {
  u = std::isnan(u) ? 0.0 : std::clamp(u, 0.0, 1.0);
  const std::int64_t cap = ceiling(retry);
  // Compare in double first: converting a double >= 2^63 back to int64 is undefined.
  const double scaled = std::floor(u * static_cast<double>(cap));
  if (scaled >= static_cast<double>(cap)) return cap;
  return static_cast<std::int64_t>(scaled);
}

std::int64_t Backoff::delay(unsigned retry) {
  std::uniform_real_distribution<double> dist(0.0, 1.0);
  return delay(retry, dist(rng_));
}

}  // namespace topicflow
