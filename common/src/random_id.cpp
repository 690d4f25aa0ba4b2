#include <topicflow/clock.hpp>
#include <topicflow/random_id.hpp>

#include <fmt/format.h>

#include <unistd.h>
#include <atomic>
#include <cstdint>
#include <random>

namespace topicflow {

std::string random_id() {
  static std::atomic<std::uint64_t> calls{0};
  std::random_device device;
  std::mt19937_64 rng((std::uint64_t{device()} << 32) ^ device() ^
                      static_cast<std::uint64_t>(steady_us()) ^
                      (static_cast<std::uint64_t>(::getpid()) << 40) ^ calls.fetch_add(1));
  return fmt::format("{:016x}", rng());
}

}  // namespace topicflow
