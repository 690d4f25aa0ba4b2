#include <topicflow/cancel_list.hpp>

namespace topicflow {

void CancelList::add(std::string_view job, std::string_view key, std::uint32_t attempt,
                     std::int64_t now) {
  prune(now);
  Entry entry{std::string(job), std::string(key), attempt};
  if (entries_.insert(entry).second) by_time_.emplace_back(now, std::move(entry));
  while (entries_.size() > kMaxEntries) {
    entries_.erase(by_time_.front().second);
    by_time_.pop_front();
  }
}

bool CancelList::contains(std::string_view job, std::string_view key, std::uint32_t attempt,
                          std::int64_t now) {
  prune(now);
  if (entries_.empty()) return false;
  return entries_.contains(Entry{std::string(job), std::string(key), attempt});
}

void CancelList::prune(std::int64_t now) {
  while (!by_time_.empty() && now - by_time_.front().first > ttl_ms_) {
    entries_.erase(by_time_.front().second);
    by_time_.pop_front();
  }
}

}  // namespace topicflow
