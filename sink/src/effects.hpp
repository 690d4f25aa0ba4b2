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
  JobCounts count_delta;  // per job and status
  std::vector<wire::Ack> acks;
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

  store::StatusCounts& delta(std::string_view job) {
    auto it = count_delta.find(job);
    if (it == count_delta.end()) it = count_delta.emplace(job, store::StatusCounts{}).first;
    return it->second;
  }
};

}  // namespace topicflow::sink
