#include <topicflow/clock.hpp>
#include <topicflow/log.hpp>

#include <spdlog/sinks/stdout_color_sinks.h>

#include <stdexcept>

namespace topicflow {

void init_logging(std::string_view role, std::string_view level) {
  const auto parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off") {
    throw std::invalid_argument("unknown log level '" + std::string(level) +
                                "' (trace, debug, info, warn, error, critical, off)");
  }
  // Replace a logger of the same name (a second init in one process) instead of throwing.
  spdlog::drop(std::string(role));
  auto logger = spdlog::stderr_color_mt(std::string(role));
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %n[%P] %^%l%$: %v");
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
}

void RateLimitedLog::warn(std::string_view message) {
  ++total_;
  const auto now = steady_ms();
  if (now - last_ms_ < interval_ms_) {
    ++suppressed_;
    return;
  }
  if (suppressed_ > 0) {
    spdlog::warn("{} ({} similar suppressed, {} in total)", message, suppressed_, total_);
  } else {
    spdlog::warn("{}", message);
  }
  suppressed_ = 0;
  last_ms_ = now;
}

}  // namespace topicflow
