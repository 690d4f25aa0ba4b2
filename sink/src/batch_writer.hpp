#pragma once
// One commit's row work, inside the caller's transaction: applies each topic's events of the
// batch to its row (the state machine, sink_state.hpp) and writes the row once, applies the
// operators' whole-job requests, and expires due leases. Everything else it did (counts,
// acks, rows in flight, rows made ready) is collected in Effects, for the caller to merge once
// COMMIT succeeded. Reads the rows in flight, never changes them. Throws what TopicTable
// throws (BusyError: the caller keeps the batch and retries). Not thread-safe.

#include "batch.hpp"
#include "effects.hpp"
#include "rows_in_flight.hpp"
#include "topic_table.hpp"

#include <topicflow/backoff.hpp>
#include <topicflow/sink_state.hpp>

#include <cstdint>
#include <vector>

namespace topicflow::sink {

class BatchWriter {
 public:
  static constexpr std::size_t kLeaseSweepLimit = 1000;  // expired leases per commit

  BatchWriter(TopicTable& table, const RowsInFlight& rows, const Policy& policy,
              Backoff& retry_backoff)
      : table_(table), rows_(rows), policy_(policy), retry_backoff_(retry_backoff) {}

  // Applies the batch's entries, then its requests. Acks of submissions are counted into
  // batch.acks(); acks of requests go to fx.acks.
  void apply(Batch& batch, std::int64_t now, Effects& fx);
  // Running rows whose lease expired by `now` are ready again (or failed at max attempts).
  void expire_leases(std::int64_t now, Effects& fx);
  // Writes the count changes collected so far to the jobs table (apply() flushes before each
  // request, so a request sees the commit's earlier changes; the caller flushes at the end).
  void flush_counts(std::int64_t now, Effects& fx);

 private:
  void apply_entry(Batch& batch, Entry& entry, std::int64_t now, Effects& fx);
  bool apply_events(Batch& batch, Entry& entry, const Row& before, bool cached, std::int64_t now,
                    Effects& fx);
  void apply_request(const JobRequest& request, std::int64_t now, Effects& fx);
  Effects::RequestResult requeue(const JobRequest& request, std::int64_t now, Effects& fx);
  Effects::RequestResult cancel(const JobRequest& request, std::int64_t now, Effects& fx);
  Effects::RequestResult remove(const JobRequest& request, Effects& fx);
  TopicTable::Write write_row(std::string_view job, std::string_view key, const Row& before,
                              Row& row, std::int64_t now, Effects& fx);

  TopicTable& table_;
  const RowsInFlight& rows_;
  const Policy& policy_;
  Backoff& retry_backoff_;
  std::vector<Outcome> outcomes_;
};

// Stages the change of a row in flight (kept when written and worth caching, else forgotten).
void stage_cache(Effects& fx, std::string id, TopicTable::Write written, Row row);
// Counts a row's change from `before` to `after` in the commit's per-job deltas.
void account(std::string_view job, const Row& before, const Row& after, std::int64_t now,
             Effects& fx);

}  // namespace topicflow::sink
