#pragma once
// One commit of the batch: one BEGIN IMMEDIATE transaction for its events and job requests (a
// new broker instance recorded with them), the leases that expired and the job counts
// (BatchWriter does the row work). A busy database (SQLITE_BUSY), a full disk or an I/O error
// roll it back and leave no trace: the batch is kept, DatabaseState says when to try again, and
// the counters say why (busy_retries, unavailable_retries). What a commit that went through did
// is in its Effects, for the caller to merge into memory. Not thread-safe (the loop's thread).

#include "batch.hpp"
#include "batch_writer.hpp"
#include "database_state.hpp"
#include "effects.hpp"
#include "topic_table.hpp"

#include <topicflow/clock.hpp>
#include <topicflow/sink.hpp>
#include <topicflow/sqlite.hpp>

#include <cstdint>

namespace topicflow::sink {

class BatchCommit {
 public:
  BatchCommit(sqlite::Database& db, TopicTable& table, BatchWriter& writer, DatabaseState& state,
              SinkCounters& counters, const Clock& clock)
      : db_(db),
        table_(table),
        writer_(writer),
        state_(state),
        counters_(counters),
        clock_(clock) {}

  // Commits `batch` as of `wall` (wall ms: due times and leases). True when COMMIT went through
  // (`fx` then holds what it did); false when the database refused it (`fx` is to be dropped).
  // Throws what the row work throws besides BusyError and UnavailableError.
  [[nodiscard]] bool run(Batch& batch, std::int64_t wall, Effects& fx);

 private:
  sqlite::Database& db_;
  TopicTable& table_;
  BatchWriter& writer_;
  DatabaseState& state_;
  SinkCounters& counters_;
  const Clock& clock_;
};

}  // namespace topicflow::sink
