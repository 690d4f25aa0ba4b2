#include "job_progress.hpp"

#include <algorithm>

namespace topicflow::sink {

using store::Status;

void JobProgress::add(const JobCounts& delta) {
  for (const auto& [job, d] : delta) {
    if (d.zero()) continue;
    auto it = counts_.find(job);
    if (it == counts_.end()) it = counts_.emplace(job, store::StatusCounts{}).first;
    it->second += d;
    dirty_.insert(job);
  }
}

void JobProgress::set_paused(std::string_view job, bool paused) {
  if (paused) {
    paused_.emplace(job);
  } else if (const auto it = paused_.find(job); it != paused_.end()) {
    paused_.erase(it);
  }
  dirty_.emplace(job);
}

void JobProgress::remove(std::string_view job) {
  if (const auto it = counts_.find(job); it != counts_.end()) counts_.erase(it);
  if (const auto it = paused_.find(job); it != paused_.end()) paused_.erase(it);
  dirty_.emplace(job);
}

store::StatusCounts JobProgress::counts(std::string_view job) const {
  const auto it = counts_.find(job);
  return it == counts_.end() ? store::StatusCounts{} : it->second;
}

std::int64_t JobProgress::unfinished() const {
  std::int64_t n = 0;
  for (const auto& [job, c] : counts_) n += c.unfinished();
  return n;
}

std::vector<std::string> JobProgress::take_due(std::int64_t now, bool force) {
  std::vector<std::string> due;
  for (auto it = dirty_.begin(); it != dirty_.end();) {
    const bool done = counts(*it).unfinished() == 0;
    const auto last = last_published_.find(*it);
    const bool quiet = last == last_published_.end() || now - last->second >= kIntervalMs;
    if (force || done || quiet) {
      last_published_[*it] = now;
      due.push_back(*it);
      it = dirty_.erase(it);
    } else {
      ++it;
    }
  }
  return due;
}

wire::Progress JobProgress::progress(const std::string& job, const SinkCounters& counters,
                                     std::int64_t wall_ms, std::uint64_t workers) const {
  const auto c = counts(job);
  auto positive = [](std::int64_t v) {
    return static_cast<std::uint64_t>(std::max<std::int64_t>(v, 0));
  };
  wire::Progress p;
  p.job = job;
  p.pending = positive(c[Status::pending]);
  p.running = positive(c[Status::running]);
  p.completed = positive(c[Status::completed]);
  p.failed = positive(c[Status::failed]);
  p.cancelled = positive(c[Status::cancelled]);
  p.paused = paused(job);
  p.batches = counters.batches;
  p.updates = counters.updates;
  p.busy_retries = counters.busy_retries;
  p.retried = counters.retried;
  p.redelivered = counters.redelivered;
  p.duplicates = counters.duplicates;
  p.decode_errors = counters.decode_errors;
  p.time_ms = wall_ms;
  p.workers = workers;
  return p;
}

}  // namespace topicflow::sink
