#include "dispatch_window.hpp"

#include <algorithm>

namespace topicflow::sink {

DispatchWindow::DispatchWindow(std::int64_t max_window, std::int64_t batch_delay_ms,
                               std::int64_t worker_ttl_ms)
    : max_window_(max_window),
      batch_delay_ms_(batch_delay_ms),
      worker_ttl_ms_(worker_ttl_ms),
      window_(std::min(max_window, kWithoutWorkers)) {}

void DispatchWindow::heard_from(std::string_view worker, std::uint32_t slots, std::int64_t now) {
  auto it = workers_.find(std::string(worker));
  if (it == workers_.end()) {
    it = workers_.emplace(std::string(worker), WorkerSeen{std::string(worker), 0, now}).first;
  }
  const bool resized = it->second.slots != slots;
  it->second.slots = slots;
  it->second.last_heard_ms = now;
  if (resized) recompute();
}

void DispatchWindow::tick(std::int64_t now) {
  const auto elapsed = now - rate_window_start_ms_;
  if (elapsed < kRateIntervalMs) return;
  const auto rate = static_cast<double>(taken_in_window_) * 1000.0 / static_cast<double>(elapsed);
  taken_rate_ = rate >= taken_rate_ ? rate : 0.5 * taken_rate_ + 0.5 * rate;
  taken_in_window_ = 0;
  rate_window_start_ms_ = now;
  expire(now);
  recompute();
}

void DispatchWindow::expire(std::int64_t now) {
  const auto cutoff = now - worker_ttl_ms_;
  std::erase_if(workers_, [cutoff](const auto& kv) { return kv.second.last_heard_ms < cutoff; });
}

std::uint64_t DispatchWindow::total_slots() const noexcept {
  std::uint64_t slots = 0;
  for (const auto& [id, w] : workers_) slots += std::max<std::uint32_t>(w.slots, 1);
  return slots;
}

std::vector<WorkerSeen> DispatchWindow::list() const {
  std::vector<WorkerSeen> out;
  out.reserve(workers_.size());
  for (const auto& [id, w] : workers_) out.push_back(w);
  std::sort(out.begin(), out.end(),
            [](const WorkerSeen& a, const WorkerSeen& b) { return a.id < b.id; });
  return out;
}

std::size_t DispatchWindow::tasks_per_message() const noexcept {
  const double per_slot =
      taken_rate_ / static_cast<double>(std::max<std::uint64_t>(total_slots(), 1));
  const auto n = static_cast<std::int64_t>(per_slot * kBatchWorkMs / 1000.0);
  return static_cast<std::size_t>(std::clamp<std::int64_t>(n, 1, kMaxTasksPerMessage));
}

void DispatchWindow::recompute() {
  const auto slots = total_slots();
  if (slots == 0) {  // no worker heard from yet: a few tasks, so the first ones find the work
    window_ = std::min(max_window_, kWithoutWorkers);
    return;
  }
  const auto target_ms = std::max<std::int64_t>(40, 2 * batch_delay_ms_);
  const double per_slot = taken_rate_ / static_cast<double>(slots);
  const auto queued = std::max<std::int64_t>(
      1, static_cast<std::int64_t>(per_slot * static_cast<double>(target_ms) / 1000.0));
  window_ = std::min(max_window_, static_cast<std::int64_t>(slots) * queued);
}

}  // namespace topicflow::sink
