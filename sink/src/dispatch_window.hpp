#pragma once
// The dispatch window: how many tasks the sink may hand to the broker that no worker has started
// yet, and how many tasks go in one message.
//
// ZeroMQ's PUSH cannot see which worker is idle, and a worker connection holds several messages
// beyond its HWMs (socket buffers, the engine's read batch), so tasks in transit may sit behind a
// busy worker's running task. Worse, a burst of more tasks than there are idle connections makes
// the broker feed whichever connection drains first: one worker got 68 of 288 tasks that way. So
// the window keeps in transit what keeps the workers fed and no more: one task per worker slot
// (every report says how many slots its worker has), more per slot only when a slot starts tasks
// faster than that (~max(40 ms, 2 batch delays) of the observed start rate, so cheap tasks still
// stream), capped by --dispatch-window. The rate is measured every 100 ms; it rises at once and
// falls smoothly.
//
// Pure bookkeeping: time comes in as `now` (steady ms). Not thread-safe.

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace topicflow::sink {

struct WorkerSeen {
  std::string id;
  std::uint32_t slots = 0;
  std::int64_t last_heard_ms = 0;  // steady ms
};

class DispatchWindow {
 public:
  // `max_window`: --dispatch-window; `batch_delay_ms`: --batch-delay-ms; a worker not heard
  // from for `worker_ttl_ms` (the lease) no longer counts.
  DispatchWindow(std::int64_t max_window, std::int64_t batch_delay_ms, std::int64_t worker_ttl_ms);

  // A report from `worker`, which has `slots` handler slots.
  void heard_from(std::string_view worker, std::uint32_t slots, std::int64_t now);
  // `n` tasks in transit were started (or finished) by workers.
  void taken(std::uint64_t n) noexcept { taken_in_window_ += n; }
  // Every loop turn: measures the start rate every 100 ms, forgets silent workers, resizes.
  void tick(std::int64_t now);

  // How many tasks may be in transit.
  [[nodiscard]] std::int64_t size() const noexcept { return window_; }
  // Tasks per message to the broker: 1 unless tasks are short. A message costs a few
  // microseconds in every process it crosses; when one worker slot starts a task every few
  // microseconds (noop, trivial handlers) that cost is most of the work. Tasks then go in
  // messages of about kBatchWorkMs of one slot's work, at most kMaxTasksPerMessage: what a
  // worker holds beyond its free slots stays a few milliseconds of work.
  [[nodiscard]] std::size_t tasks_per_message() const noexcept;

  // Workers heard from within the TTL as of the last tick() or heard_from().
  [[nodiscard]] std::size_t workers() const noexcept { return workers_.size(); }
  [[nodiscard]] std::uint64_t total_slots() const noexcept;
  [[nodiscard]] std::vector<WorkerSeen> list() const;
  // Tasks started per second, as last measured.
  [[nodiscard]] double start_rate() const noexcept { return taken_rate_; }

  static constexpr double kBatchWorkMs = 2.0;
  static constexpr std::int64_t kMaxTasksPerMessage = 64;
  static constexpr std::int64_t kWithoutWorkers = 8;  // before any worker was heard from
  static constexpr std::int64_t kRateIntervalMs = 100;

 private:
  void expire(std::int64_t now);
  void recompute();

  std::int64_t max_window_;
  std::int64_t batch_delay_ms_;
  std::int64_t worker_ttl_ms_;
  std::unordered_map<std::string, WorkerSeen> workers_;
  std::int64_t window_;
  std::uint64_t taken_in_window_ = 0;
  double taken_rate_ = 0.0;
  std::int64_t rate_window_start_ms_ = 0;
};

}  // namespace topicflow::sink
