#pragma once
// Everything one commit did, collected while its transaction runs and merged into the sink's
// memory only once COMMIT succeeded (a busy or failed commit rolls back and leaves no trace).

#include "job_progress.hpp"

#include <topicflow/sink_state.hpp>
#include <topicflow/store.hpp>
#include <topicflow/wire.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace topicflow::sink {

struct Effects {
  // Per job and status: what this commit changed so far and the jobs table does not have yet
  // (BatchWriter::flush_counts writes it), and everything it changed (for the sink's memory).
  JobCounts count_delta;
  JobCounts count_total;
  std::array<std::uint64_t, store::kStatusCount> written{};  // rows written, by new status
  std::uint64_t updates = 0;
  std::uint64_t redelivered = 0;
  std::uint64_t retried = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t stale = 0;
  std::uint64_t bogus = 0;
  std::uint64_t guard_refused = 0;
  std::uint64_t lease_expired = 0;
  std::uint64_t taken = 0;  // tasks in transit that a worker started (or finished)
  // ... their rowid and how long after they were handed out they started (ms)
  std::vector<std::pair<std::int64_t, std::int64_t>> start_latencies;
  // Changes of the rows in flight, applied in order (nullopt: forget the row).
  std::vector<std::pair<std::string, std::optional<Row>>> cache;
  // Rows this commit made ready, for the ready queue. `job` views the batch's entry or the row
  // in flight it came from: valid until the batch is cleared and the cache changes applied.
  struct Ready {
    std::int64_t due = 0;
    std::int64_t rowid = 0;
    std::string_view job;
  };
  std::vector<Ready> ready;

  // The answer to each of the batch's job requests, in order.
  struct RequestResult {
    int status = 200;  // as HTTP: 200, 404 (no such job), 409 (its state forbids the action)
    std::string error;
    std::uint64_t changed = 0;
  };
  std::vector<RequestResult> results;
  // What the requests did beyond the rows (views of the requests' job names).
  std::vector<wire::CancelledTask> cancelled_tasks;  // in transit or running: workers stop them
  std::vector<std::string_view> cancelled_jobs;
  std::vector<std::string_view> removed_jobs;
  std::vector<std::pair<std::string_view, bool>> paused;  // job, paused
  std::uint64_t cancelled_late = 0;                       // results for cancelled topics, ignored

  store::StatusCounts& delta(std::string_view job) {
    auto it = count_delta.find(job);
    if (it == count_delta.end()) it = count_delta.emplace(job, store::StatusCounts{}).first;
    return it->second;
  }
};

}  // namespace topicflow::sink
