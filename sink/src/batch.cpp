#include "batch.hpp"

#include "row_id.hpp"

namespace topicflow::sink {

Entry& Batch::add(std::string_view job, std::string_view key, Event event) {
  row_id(id_scratch_, job, key);  // (a lookup needs no allocation of its own)
  auto it = index_.find(id_scratch_);
  if (it == index_.end()) {
    if (entry_count_ == entries_.size()) entries_.emplace_back();
    auto& added = entries_[entry_count_];  // (its events were cleared with its batch)
    added.id = id_scratch_;
    added.job_size = job.size();
    added.takes = false;
    it = index_.emplace(added.id, entry_count_++).first;
  }
  auto& entry = entries_[it->second];
  entry.events.push_back(std::move(event));
  ++events_;
  return entry;
}

std::string_view Batch::keep_origin(std::string id) { return origins_.emplace_back(std::move(id)); }

std::int32_t Batch::add_ack(wire::Ack ack) {
  acks_.push_back(std::move(ack));
  return static_cast<std::int32_t>(acks_.size() - 1);
}

void Batch::add_request(JobRequest request) { requests_.push_back(std::move(request)); }

void Batch::mark_takes(Entry& entry) {
  if (entry.takes) return;
  entry.takes = true;
  ++takes_;
}

void Batch::clear() {
  index_.clear();
  for (std::size_t i = 0; i < entry_count_; ++i) entries_[i].events.clear();
  entry_count_ = 0;
  origins_.clear();
  acks_.clear();
  requests_.clear();
  api_submits_.clear();
  new_broker_.reset();
  events_ = 0;
  takes_ = 0;
  started_ms_ = -1;
}

}  // namespace topicflow::sink
