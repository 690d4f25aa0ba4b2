#include <topicflow/report_buffer.hpp>

#include <algorithm>
#include <utility>

namespace topicflow {

ReportBuffer::ReportBuffer(std::string worker_id, std::uint32_t slots, std::int64_t flush_ms)
    : worker_id_(std::move(worker_id)), slots_(slots), flush_ms_(flush_ms) {}

std::size_t ReportBuffer::cost(const wire::Update& u) noexcept {
  return u.job.size() + u.key.size() + u.data.size() + 16;
}

wire::Update ReportBuffer::update_for(wire::UpdateKind kind, const wire::Task& task) {
  wire::Update u;
  u.kind = kind;
  u.job = task.job;
  u.key = task.key;
  u.attempt = task.attempt;
  return u;
}

void ReportBuffer::add(std::uint64_t task_id, wire::Update update, std::int64_t now) {
  if (pending_.empty()) first_ms_ = now;
  if (update.kind == wire::UpdateKind::started && task_id != 0) started_.insert(task_id);
  bytes_ += cost(update);
  pending_.push_back(Pending{task_id, std::move(update)});
}

bool ReportBuffer::drop_started(std::uint64_t task_id) {
  if (started_.erase(task_id) == 0) return false;
  const auto it = std::find_if(pending_.begin(), pending_.end(), [&](const Pending& p) {
    return p.task_id == task_id && p.update.kind == wire::UpdateKind::started;
  });
  if (it == pending_.end()) return false;
  bytes_ -= std::min(bytes_, cost(it->update));
  pending_.erase(it);
  return true;
}

bool ReportBuffer::started_pending(std::uint64_t task_id) const {
  return started_.contains(task_id);
}

bool ReportBuffer::full() const noexcept {
  return pending_.size() >= kMaxUpdates || bytes_ >= kMaxBytes;
}

std::optional<std::int64_t> ReportBuffer::due_ms() const {
  if (pending_.empty()) return std::nullopt;
  return first_ms_ + flush_ms_;
}

bool ReportBuffer::due(std::int64_t now) const {
  return !pending_.empty() && (full() || now >= first_ms_ + flush_ms_);
}

wire::Report ReportBuffer::take() {
  wire::Report report;
  report.worker = worker_id_;
  report.slots = slots_;
  report.updates.reserve(pending_.size());
  for (auto& p : pending_) report.updates.push_back(std::move(p.update));
  pending_.clear();
  started_.clear();
  bytes_ = 0;
  return report;
}

}  // namespace topicflow
