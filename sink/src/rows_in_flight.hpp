#pragma once
// The rows in flight: the committed state of every row whose next event is a worker's report,
// kept in memory so that a report needs no SELECT. Two kinds:
//   - in transit: handed to the broker, not started yet. Its row in the database is still
//     ready, with the previous attempt; only this cache knows the attempt handed out and when
//     (Row::sent_at; sink::on_due);
//   - running: started by a worker, holding a lease until due_at.
// The database stays the source of truth: a row not here is read from it, every write is still
// guarded in SQL, and the sink changes this cache only after the COMMIT of the write it mirrors.
// Its size is bounded by the dispatch window plus the rows running. Not thread-safe.

#include <topicflow/sink_state.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace topicflow::sink {

class RowsInFlight {
 public:
  // Rows worth keeping: running, or in transit.
  [[nodiscard]] static bool cacheable(const Row& row) noexcept {
    return row.exists && (row.status == store::Status::running || row.in_transit());
  }

  // The cached row of `id` (job NUL key), or nullptr.
  [[nodiscard]] const Row* find(const std::string& id) const;
  // The cache's own copy of `id` (stable while the row stays), or nullptr.
  [[nodiscard]] const std::string* id_of(const std::string& id) const;
  // Sets (or, with nullopt, forgets) the row of `id`.
  void put(std::string id, std::optional<Row> row);

  // Tasks in transit: how many, and when the oldest was handed out (or nullopt).
  [[nodiscard]] std::int64_t in_transit() const noexcept {
    return static_cast<std::int64_t>(transit_by_sent_.size());
  }
  [[nodiscard]] std::optional<std::int64_t> oldest_transit_sent() const;
  // Forgets the tasks in transit handed out at or before `sent_by`: they are presumed lost (a
  // dead worker's buffers, a dead broker's queue) and their rows, ready in the database, are
  // sent again. Returns them (id and the row as it was in transit).
  std::vector<std::pair<std::string, Row>> forget_transit(std::int64_t sent_by);

  // Leases of running rows: the earliest (or nullopt), and the ids of those due at or before
  // `now`, earliest first, at most `limit`.
  [[nodiscard]] std::optional<std::int64_t> next_lease_due() const;
  [[nodiscard]] std::vector<std::string> expired_leases(std::int64_t now, std::size_t limit) const;

  [[nodiscard]] std::size_t size() const noexcept { return rows_.size(); }
  // Calls f(id, row) for every row (for reads such as the workers' running counts).
  void for_each(const std::function<void(std::string_view, const Row&)>& f) const;

 private:
  std::unordered_map<std::string, Row> rows_;
  // the rows in transit by (when handed out, rowid): their keys in rows_ (an unordered_map's
  // keys never move; put and forget_transit erase both together)
  std::map<std::pair<std::int64_t, std::int64_t>, const std::string*> transit_by_sent_;
  // the running rows by (lease due, rowid), likewise
  std::map<std::pair<std::int64_t, std::int64_t>, const std::string*> lease_by_due_;

  void unindex(const Row& row);
  void index(const std::string& id, const Row& row);
};

}  // namespace topicflow::sink
