#include "database_state.hpp"

#include <topicflow/log.hpp>

#include <algorithm>

namespace topicflow::sink {

void DatabaseState::failed(Kind kind, const std::string& reason, std::size_t holding,
                           std::int64_t now) {
  const auto delay = std::max<std::int64_t>(backoff_.delay(std::min(attempts_, 20U)), 1);
  ++attempts_;
  if (since_ == 0) since_ = now;
  retry_at_ = now + delay;
  const bool changed = kind != kind_ || reason != reason_;
  kind_ = kind;
  reason_ = reason;
  if (kind == Kind::busy) {
    spdlog::warn("database busy ({}); keeping {} updates, retry {} in {} ms", reason, holding,
                 attempts_, delay);
  } else if (changed) {
    spdlog::error(
        "database unavailable ({}); keeping {} updates and retrying (every {} ms at most) until "
        "it takes writes again; nothing is lost",
        reason, holding, delay);
  }
}

void DatabaseState::succeeded(std::int64_t now) {
  if (attempts_ > 0) {
    if (kind_ == Kind::busy) {
      spdlog::info("database available again after {} busy retries", attempts_);
    } else {
      spdlog::info("database takes writes again after {:.1f} s ({} retries)",
                   static_cast<double>(now - since_) / 1000.0, attempts_);
    }
  }
  kind_ = Kind::writable;
  since_ = 0;
  retry_at_ = 0;
  attempts_ = 0;
  reason_.clear();
}

}  // namespace topicflow::sink
