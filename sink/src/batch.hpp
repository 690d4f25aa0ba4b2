#pragma once
// The sink's batch: what it received since the last commit, held in memory until one
// transaction writes it. Events of one topic are kept together (coalesced: the topic's row is
// read and written once per batch) in arrival order; acks wait for the commit that makes what
// they acknowledge durable. Owns no socket and no database: the sink's loop fills it, the commit
// reads it, clear() starts the next one. Not thread-safe.

#include "api_inbox.hpp"

#include <topicflow/sink_state.hpp>
#include <topicflow/wire.hpp>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace topicflow::sink {

// The events of one topic in this batch.
struct Entry {
  std::string id;  // job NUL key (row_id.hpp)
  std::size_t job_size = 0;
  std::vector<Event> events;
  // A report of a task in transit: its commit frees room in the dispatch window (a hint for
  // when to commit; the state machine decides what the event does).
  bool takes = false;

  [[nodiscard]] std::string_view job() const noexcept {
    return std::string_view(id).substr(0, job_size);
  }
  [[nodiscard]] std::string_view key() const noexcept {
    return std::string_view(id).substr(job_size + 1);
  }
};

// An operator's request on a whole job, applied in the commit after the topics' events, in
// arrival order. Answered after COMMIT: an Ack to `client` (ZeroMQ), or through `call` (HTTP).
struct JobRequest {
  enum class Kind : std::uint8_t { requeue_failed, pause, resume, cancel, remove };
  Kind kind = Kind::requeue_failed;
  std::string job;
  std::string client{};
  std::shared_ptr<ApiCall> call{};
};

class Batch {
 public:
  // Adds an event for job/key; returns the topic's entry (new or the one already in the batch).
  Entry& add(std::string_view job, std::string_view key, Event event);
  // Keeps a message's submission or worker id for the batch and returns a view of it: events
  // refer to it (Event::origin) instead of copying it. The view stays valid until clear().
  std::string_view keep_origin(std::string id);
  // An ack sent once the batch is committed; returns its index (Event::ack).
  std::int32_t add_ack(wire::Ack ack);
  void add_request(JobRequest request);
  // A submission over HTTP: its topics' events count toward ack `ack`, answered through `call`.
  void add_api_submit(std::int32_t ack, std::shared_ptr<ApiCall> call) {
    api_submits_.emplace_back(ack, std::move(call));
  }
  [[nodiscard]] const std::vector<std::pair<std::int32_t, std::shared_ptr<ApiCall>>>& api_submits()
      const noexcept {
    return api_submits_;
  }
  void set_new_broker(std::string instance) { new_broker_ = std::move(instance); }
  void mark_takes(Entry& entry);
  // The first thing this batch holds arrived at `now` (steady ms), unless something came first.
  void touch(std::int64_t now) {
    if (started_ms_ < 0) started_ms_ = now;
  }

  // Entries in arrival order: [0, entry_count()).
  [[nodiscard]] std::size_t entry_count() const noexcept { return entry_count_; }
  [[nodiscard]] Entry& entry(std::size_t i) { return entries_[i]; }
  [[nodiscard]] std::vector<wire::Ack>& acks() noexcept { return acks_; }
  [[nodiscard]] const std::vector<JobRequest>& requests() const noexcept { return requests_; }
  [[nodiscard]] const std::optional<std::string>& new_broker() const noexcept {
    return new_broker_;
  }
  [[nodiscard]] std::size_t events() const noexcept { return events_; }
  [[nodiscard]] std::size_t takes() const noexcept { return takes_; }
  [[nodiscard]] std::int64_t started_ms() const noexcept { return started_ms_; }
  [[nodiscard]] bool empty() const noexcept {
    return entry_count_ == 0 && requests_.empty() && !new_broker_ && acks_.empty() &&
           api_submits_.empty();
  }

  // Forgets everything (after the commit). Entries beyond the batch keep their allocations (the
  // id's buffer, the events' array), so a topic's entry costs no allocation of its own once a
  // batch as large has been seen; at most about --buffer-max of them are kept.
  void clear();

 private:
  // entries_[0, entry_count_) is the batch, indexed by views of Entry::id (a deque: entries
  // never move).
  std::unordered_map<std::string_view, std::size_t> index_;
  std::deque<Entry> entries_;
  std::size_t entry_count_ = 0;
  std::string id_scratch_;
  std::deque<std::string> origins_;  // a deque: the views events hold never move
  std::vector<wire::Ack> acks_;
  std::vector<JobRequest> requests_;
  std::vector<std::pair<std::int32_t, std::shared_ptr<ApiCall>>> api_submits_;
  std::optional<std::string> new_broker_;
  std::size_t events_ = 0;
  std::size_t takes_ = 0;
  std::int64_t started_ms_ = -1;
};

}  // namespace topicflow::sink
