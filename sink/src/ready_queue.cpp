#include "ready_queue.hpp"

#include <algorithm>

namespace topicflow::sink {

ReadyQueue::JobIndex ReadyQueue::job_index(std::string_view job) {
  const auto it = index_.find(std::string(job));
  if (it != index_.end()) return it->second;
  const auto index = static_cast<JobIndex>(jobs_.size());
  jobs_.push_back(Job{std::string(job), false, {}});
  index_.emplace(std::string(job), index);
  return index;
}

void ReadyQueue::push(std::int64_t due, std::int64_t rowid, JobIndex job) {
  heap_.push_back(Item{due, rowid, job});
  std::push_heap(heap_.begin(), heap_.end(), later);
}

void ReadyQueue::park_paused_front() {
  while (!heap_.empty() && jobs_[heap_.front().job].paused) {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    jobs_[heap_.back().job].parked.push_back(heap_.back());
    heap_.pop_back();
    ++parked_;
  }
}

std::optional<ReadyQueue::Item> ReadyQueue::pop_due(std::int64_t now) {
  park_paused_front();
  if (heap_.empty() || heap_.front().due > now) return std::nullopt;
  std::pop_heap(heap_.begin(), heap_.end(), later);
  const auto item = heap_.back();
  heap_.pop_back();
  return item;
}

std::optional<std::int64_t> ReadyQueue::next_due() {
  park_paused_front();
  if (heap_.empty()) return std::nullopt;
  return heap_.front().due;
}

void ReadyQueue::pause(std::string_view job) { jobs_[job_index(job)].paused = true; }

void ReadyQueue::resume(std::string_view job) {
  auto& j = jobs_[job_index(job)];
  j.paused = false;
  for (const auto& item : j.parked) push(item.due, item.rowid, item.job);
  parked_ -= j.parked.size();
  j.parked.clear();
  j.parked.shrink_to_fit();
}

bool ReadyQueue::paused(std::string_view job) const {
  const auto it = index_.find(std::string(job));
  return it != index_.end() && jobs_[it->second].paused;
}

void ReadyQueue::remove_job(std::string_view job) {
  const auto index = job_index(job);
  auto& j = jobs_[index];
  parked_ -= j.parked.size();
  j.parked.clear();
  j.parked.shrink_to_fit();
  const auto before = heap_.size();
  std::erase_if(heap_, [index](const Item& item) { return item.job == index; });
  if (heap_.size() != before) std::make_heap(heap_.begin(), heap_.end(), later);
}

}  // namespace topicflow::sink
