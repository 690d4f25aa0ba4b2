#pragma once
// How long a task handed to the broker may take to start before the sink presumes it lost (in a
// dead worker's buffers, or a dead broker's queue) and sends it again: computed like TCP's
// retransmission timeout (RFC 6298) from the observed dispatch-to-start latency, which includes
// the time a task waits in a worker's queue behind the task running there:
//   srtt <- 7/8 srtt + 1/8 r,  rttvar <- 3/4 rttvar + 1/4 |srtt - r|,  timeout = srtt + 4 rttvar,
// never below `floor_ms` (a latency spike under load must not resend healthy tasks en masse) and
// never above `cap_ms` (--dispatch-timeout-ms), which is also the timeout before the first
// sample. A wrong guess costs a duplicate delivery, which is harmless (the first recorded result
// wins) and counted. As in TCP (Karn's algorithm), a task that was sent again gives no sample (its
// latency would be measured from the wrong send), and resent tasks presumed lost again double
// the timeout until a clean sample arrives: tasks that merely wait behind slow ones in the
// workers' queues are not resent again and again. One doubling per timeout interval at most:
// tasks lost together (a dead worker's queue) are found a few milliseconds apart, and must not
// double the timeout once each (with 6 such tasks the last waited 4 + 8 + 16 + 32 s, while
// they filled the dispatch window and the job stood still). A first loss never doubles it.
// Pure: latencies and times come in as numbers. Not thread-safe.

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace topicflow::sink {

class TransitTimeout {
 public:
  static constexpr std::int64_t kDefaultFloorMs = 2000;
  static constexpr int kMaxBackoffShift = 6;  // at most 64 x

  TransitTimeout(std::int64_t cap_ms, std::int64_t floor_ms = kDefaultFloorMs)
      : cap_ms_(cap_ms), floor_ms_(std::min(floor_ms, cap_ms)) {}

  // A task started `latency_ms` after it was handed to the broker.
  void observe(std::int64_t latency_ms) {
    const auto r = static_cast<double>(std::max<std::int64_t>(latency_ms, 0));
    if (samples_ == 0) {
      srtt_ = r;
      rttvar_ = r / 2.0;
    } else {
      rttvar_ = 0.75 * rttvar_ + 0.25 * std::abs(srtt_ - r);
      srtt_ = 0.875 * srtt_ + 0.125 * r;
    }
    ++samples_;
    backoff_shift_ = 0;
  }

  // Tasks sent again were presumed lost again at `now`: wait longer before the next guess,
  // unless the timeout already doubled within its current interval (the same round).
  void back_off(std::int64_t now) {
    if (backoff_shift_ > 0 && now < backed_off_at_ + ms()) return;
    backoff_shift_ = std::min(backoff_shift_ + 1, kMaxBackoffShift);
    backed_off_at_ = now;
  }

  // The timeout now.
  [[nodiscard]] std::int64_t ms() const {
    if (samples_ == 0) return cap_ms_;
    const auto rto = std::max<std::int64_t>(
        static_cast<std::int64_t>(std::ceil(srtt_ + 4.0 * rttvar_)), floor_ms_);
    return std::min(rto << backoff_shift_, cap_ms_);
  }
  [[nodiscard]] std::uint64_t samples() const noexcept { return samples_; }
  [[nodiscard]] double smoothed_ms() const noexcept { return srtt_; }

 private:
  std::int64_t cap_ms_;
  std::int64_t floor_ms_;
  double srtt_ = 0.0;
  double rttvar_ = 0.0;
  std::uint64_t samples_ = 0;
  int backoff_shift_ = 0;
  std::int64_t backed_off_at_ = 0;
};

}  // namespace topicflow::sink
