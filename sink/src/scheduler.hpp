#pragma once
// The scheduler of record: hands ready rows to the broker, oldest due first, up to the room
// the dispatch window leaves, and takes back tasks lost in transit.
//
// Ready rows live in the ready queue (ready_queue.hpp), running rows and tasks in transit in
// the rows in flight (rows_in_flight.hpp); both are rebuilt at start by one scan of the table
// (load). Handing a task out writes nothing: the row stays ready with its previous attempt, and
// the new attempt (sink::on_due: attempts + 1, in transit until its dispatch timeout) lives in
// the rows in flight until the attempt's first report writes it. A sink that dies meanwhile
// leaves the row ready, so the next one sends the same attempt again, as for a task lost in
// transit, and still accepts the first one's reports (sink::apply adopts attempt + 1 of a ready
// row). Not thread-safe.

#include "ready_queue.hpp"
#include "rows_in_flight.hpp"
#include "topic_table.hpp"
#include "transit_timeout.hpp"

#include <topicflow/sink_state.hpp>
#include <topicflow/wire.hpp>

#include <cstdint>
#include <optional>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace topicflow::sink {

class Scheduler {
 public:
  Scheduler(TopicTable& table, RowsInFlight& rows, const Policy& policy)
      : table_(table), rows_(rows), policy_(policy), transit_timeout_(policy.dispatch_timeout_ms) {}

  struct Loaded {
    std::size_t ready = 0;
    std::size_t running = 0;
  };
  // Rebuilds the ready queue and the running rows from the table (one scan).
  Loaded load();

  // A row became ready (committed).
  void ready(std::int64_t due, std::int64_t rowid, std::string_view job) {
    queue_.push(due, rowid, job);
  }
  // Forgets the tasks in transit not started within the transit timeout at `now` (all, with
  // forget_all: the broker restarted); their rows are ready again and are sent again with the
  // same attempt. Returns how many.
  std::size_t forget_transit(std::int64_t now);
  std::size_t forget_all_transit();
  // The task of row `rowid` started `latency_ms` after it was handed out: a sample for the
  // transit timeout (transit_timeout.hpp), unless the row was sent more than once since it last
  // started (Karn's algorithm: the latency would be measured from the wrong send).
  void started_after(std::int64_t rowid, std::int64_t latency_ms);
  [[nodiscard]] const TransitTimeout& transit_timeout() const noexcept { return transit_timeout_; }

  // Hands out up to `room` ready rows due at `now` (wall ms): the tasks to send, each now in
  // transit in the rows in flight. Reads the rows (one read transaction); entries whose row is
  // no longer ready are dropped. Throws SqliteError when the database cannot be read (the
  // entries popped are put back first).
  std::vector<wire::Task> dispatch(std::int64_t room, std::int64_t now);

  // When the next ready row of a job that is not paused is due.
  [[nodiscard]] std::optional<std::int64_t> next_ready_due() { return queue_.next_due(); }
  // When the next lease or dispatch timeout falls due.
  [[nodiscard]] std::optional<std::int64_t> next_timer_due() const;

  [[nodiscard]] ReadyQueue& queue() noexcept { return queue_; }

 private:
  TopicTable& table_;
  RowsInFlight& rows_;
  const Policy& policy_;
  // `guessed_at`: when the transit timeout presumed them lost (nothing: a new broker's).
  std::size_t requeue(const std::vector<std::pair<std::string, Row>>& forgotten,
                      std::optional<std::int64_t> guessed_at);

  ReadyQueue queue_;
  TransitTimeout transit_timeout_;
  std::unordered_set<std::int64_t> resent_;  // rows sent again and not started since
  std::string id_;
};

}  // namespace topicflow::sink
