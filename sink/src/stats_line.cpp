#include "stats_line.hpp"

#include <fmt/format.h>

namespace topicflow::sink {

std::optional<std::string> StatsLine::take(std::int64_t now, const SinkCounters& counters,
                                           std::int64_t unfinished, std::int64_t in_transit) {
  if (now - window_start_ < interval_ms_) return std::nullopt;
  const auto seconds = static_cast<double>(now - window_start_) / 1000.0;
  const auto updates = counters.updates - updates_;
  std::optional<std::string> line;
  if (updates > 0 || counters.decode_errors != decode_errors_) {
    line = fmt::format(
        "rate: {:.0f} updates/s over {:.0f} s; {} batches, {} dispatched, {} redelivered, {} "
        "retried, {} busy retries, {} bad messages in total; {} unfinished, {} in transit",
        static_cast<double>(updates) / seconds, seconds, counters.batches, counters.dispatched,
        counters.redelivered, counters.retried, counters.busy_retries, counters.decode_errors,
        unfinished, in_transit);
  }
  window_start_ = now;
  updates_ = counters.updates;
  decode_errors_ = counters.decode_errors;
  return line;
}

}  // namespace topicflow::sink
