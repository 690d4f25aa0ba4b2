#pragma once
// The sink's periodic stats line ("rate: ... updates/s over ... s; ..."): every
// --stats-interval-ms, when updates were committed or bad messages dropped in the interval.
// Pure: time comes in as `now` (steady ms), the line goes out as a string. Not thread-safe.

#include <topicflow/sink.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace topicflow::sink {

class StatsLine {
 public:
  explicit StatsLine(std::int64_t interval_ms) : interval_ms_(interval_ms) {}

  // The first interval starts at `now`.
  void start(std::int64_t now) { window_start_ = now; }
  // When the interval is over at `now`: the next one starts, and the line for the one that ended
  // is returned, unless nothing happened in it. nullopt otherwise.
  [[nodiscard]] std::optional<std::string> take(std::int64_t now, const SinkCounters& counters,
                                                std::int64_t unfinished, std::int64_t in_transit);

 private:
  std::int64_t interval_ms_;
  std::int64_t window_start_ = 0;
  std::uint64_t updates_ = 0;
  std::uint64_t decode_errors_ = 0;
};

}  // namespace topicflow::sink
