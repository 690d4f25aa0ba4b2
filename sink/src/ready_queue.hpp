#pragma once
// The ready queue: every ready row (pending, not handed out) by (due time, rowid), so the sink
// hands out the oldest due first (registration order for first attempts) without an index on
// the table. Rebuilt at start from one scan of the table; after that every write that makes a
// row ready pushes it (a registration, a retry, a release, an expired lease, a requeue, a task
// lost in transit).
//
// Entries are hints, checked against the row when they are popped: a row that is no longer
// ready (adopted by a worker's report after a sink restart, cancelled, deleted), or is due later
// than its entry says (rescheduled), is skipped by the caller, and an entry pushed twice is
// harmless. Paused jobs: their entries are set aside when they reach the front and put back on
// resume. Memory: 24 bytes per entry (a binary heap in one vector).
//
// Time comes in as `now` (wall ms, as the rows' due_at). Not thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace topicflow::sink {

class ReadyQueue {
 public:
  using JobIndex = std::uint32_t;
  struct Item {
    std::int64_t due = 0;
    std::int64_t rowid = 0;
    JobIndex job = 0;
  };

  // The index of a job name (interned on first use).
  JobIndex job_index(std::string_view job);
  [[nodiscard]] const std::string& job_name(JobIndex job) const { return jobs_[job].name; }

  void push(std::int64_t due, std::int64_t rowid, JobIndex job);
  void push(std::int64_t due, std::int64_t rowid, std::string_view job) {
    push(due, rowid, job_index(job));
  }

  // The next entry of a job that is not paused with due <= now, removed from the queue.
  [[nodiscard]] std::optional<Item> pop_due(std::int64_t now);
  // When the next entry of a job that is not paused is due, if any.
  [[nodiscard]] std::optional<std::int64_t> next_due();

  void pause(std::string_view job);
  void resume(std::string_view job);
  [[nodiscard]] bool paused(std::string_view job) const;
  // Drops every entry of `job` (cancelled or deleted).
  void remove_job(std::string_view job);

  // Entries held, set-aside ones included.
  [[nodiscard]] std::size_t size() const noexcept { return heap_.size() + parked_; }

 private:
  struct Job {
    std::string name;
    bool paused = false;
    std::vector<Item> parked;  // entries set aside while paused
  };
  // Moves entries of paused jobs off the front.
  void park_paused_front();
  static bool later(const Item& a, const Item& b) noexcept {
    return a.due != b.due ? a.due > b.due : a.rowid > b.rowid;
  }

  std::vector<Item> heap_;  // a min-heap by (due, rowid)
  std::vector<Job> jobs_;
  std::unordered_map<std::string, JobIndex> index_;
  std::size_t parked_ = 0;
};

}  // namespace topicflow::sink
