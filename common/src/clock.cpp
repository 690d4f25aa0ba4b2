#include <topicflow/clock.hpp>

#include <sys/eventfd.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace topicflow {
namespace {

class SteadyClock final : public Clock {
 public:
  [[nodiscard]] std::int64_t steady_ms() const noexcept override { return topicflow::steady_ms(); }
};

}  // namespace

const Clock& steady_clock() noexcept {
  static const SteadyClock kClock;
  return kClock;
}

ManualClock::ManualClock(std::int64_t start_ms)
    : now_ms_(start_ms),
      start_ms_(start_ms),
      wall_at_start_ms_(topicflow::now_ms()),
      wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (wake_fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
}

ManualClock::~ManualClock() { ::close(wake_fd_); }

std::int64_t ManualClock::steady_ms() const noexcept { return now_ms_.load(); }

std::int64_t ManualClock::wall_ms() const noexcept {
  return wall_at_start_ms_ + (now_ms_.load() - start_ms_);
}

void ManualClock::advance(std::int64_t ms) noexcept {
  now_ms_.fetch_add(ms);
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);
}

void ManualClock::drain_wake() const noexcept {
  std::uint64_t value = 0;
  [[maybe_unused]] const auto n = ::read(wake_fd_, &value, sizeof value);
}

}  // namespace topicflow
