#pragma once
// The updates a worker has not sent yet, and when they must go (worker/src/worker.cpp sends
// them). Updates of many tasks travel in one wire::Report; a report is due `flush_ms` after its
// first update, or at once when it holds kMaxUpdates updates or kMaxBytes bytes. A task that
// finishes before its `started` left has that `started` dropped: the result says it all
// ("coalesced"). Time is an argument (the worker's clock), so tests need no sleeps.
// Not thread-safe: the worker's loop owns it.

#include <topicflow/wire.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

namespace topicflow {

class ReportBuffer {
 public:
  static constexpr std::size_t kMaxUpdates = 256;
  // Well under the sink's ZMQ_MAXMSGSIZE (16 MiB).
  static constexpr std::size_t kMaxBytes = std::size_t{4} << 20;

  ReportBuffer(std::string worker_id, std::uint32_t slots, std::int64_t flush_ms);

  // Queues an update about the task `task_id` (0: a task the worker never ran, e.g. one given
  // back at shutdown). `now` is when the first update of a report starts its flush delay.
  void add(std::uint64_t task_id, wire::Update update, std::int64_t now);
  // Drops the task's `started` if it has not been sent (the result is about to be added);
  // true if it did.
  bool drop_started(std::uint64_t task_id);
  // Its `started` is queued and not sent yet (a heartbeat would say nothing new).
  [[nodiscard]] bool started_pending(std::uint64_t task_id) const;

  [[nodiscard]] bool empty() const noexcept { return pending_.empty(); }
  [[nodiscard]] std::size_t size() const noexcept { return pending_.size(); }
  [[nodiscard]] std::size_t bytes() const noexcept { return bytes_; }
  // As large as one report may get: send now.
  [[nodiscard]] bool full() const noexcept;
  // When the buffered updates must be sent (nothing when empty).
  [[nodiscard]] std::optional<std::int64_t> due_ms() const;
  [[nodiscard]] bool due(std::int64_t now) const;

  // A report of everything buffered (no updates: an "I am alive" announcement, which carries
  // the slots the sink sizes its dispatch window with), leaving the buffer empty.
  [[nodiscard]] wire::Report take();

  // An update about `task` (job, key, attempt), to fill in.
  [[nodiscard]] static wire::Update update_for(wire::UpdateKind kind, const wire::Task& task);

 private:
  struct Pending {
    std::uint64_t task_id = 0;
    wire::Update update;
  };
  static std::size_t cost(const wire::Update& update) noexcept;

  std::string worker_id_;
  std::uint32_t slots_;
  std::int64_t flush_ms_;
  std::vector<Pending> pending_;
  std::size_t bytes_ = 0;
  std::int64_t first_ms_ = 0;
  std::unordered_set<std::uint64_t> started_;  // tasks whose `started` is in pending_
};

}  // namespace topicflow
