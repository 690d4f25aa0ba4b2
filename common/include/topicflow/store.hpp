#pragma once
// The database: schema (the `topics`, `jobs` and `meta` tables) and its migrations, status names,
// and the read-only queries that `topicflow status`, the sink's HTTP API and tests use. Writes
// belong to the sink alone (sink/src/topic_table.cpp).

#include <topicflow/sqlite.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace topicflow::store {

enum class Status : std::uint8_t {
  pending = 0,
  running = 1,
  completed = 2,
  failed = 3,
  cancelled = 4,  // terminal, only by an operator's cancel
};
inline constexpr std::array<std::string_view, 5> kStatusNames = {"pending", "running", "completed",
                                                                 "failed", "cancelled"};

[[nodiscard]] constexpr std::string_view to_string(Status s) noexcept {
  return kStatusNames[static_cast<std::size_t>(s)];
}
[[nodiscard]] std::optional<Status> parse_status(std::string_view text) noexcept;
[[nodiscard]] constexpr bool is_terminal(Status s) noexcept {
  return s == Status::completed || s == Status::failed || s == Status::cancelled;
}
inline constexpr std::size_t kStatusCount = kStatusNames.size();
inline constexpr std::array<Status, kStatusCount> kStatuses = {
    Status::pending, Status::running, Status::completed, Status::failed, Status::cancelled};

// A count per status, indexed by Status (signed: the sink adds deltas that may go below zero
// within one commit).
struct StatusCounts {
  std::array<std::int64_t, kStatusCount> n{};

  [[nodiscard]] std::int64_t& operator[](Status s) noexcept {
    return n[static_cast<std::size_t>(s)];
  }
  [[nodiscard]] std::int64_t operator[](Status s) const noexcept {
    return n[static_cast<std::size_t>(s)];
  }
  // Not terminal yet: pending or running.
  [[nodiscard]] std::int64_t unfinished() const noexcept {
    return (*this)[Status::pending] + (*this)[Status::running];
  }
  [[nodiscard]] std::int64_t total() const noexcept {
    std::int64_t t = 0;
    for (auto v : n) t += v;
    return t;
  }
  [[nodiscard]] bool zero() const noexcept {
    for (auto v : n)
      if (v != 0) return false;
    return true;
  }
  StatusCounts& operator+=(const StatusCounts& other) noexcept {
    for (std::size_t i = 0; i < n.size(); ++i) n[i] += other.n[i];
    return *this;
  }
  bool operator==(const StatusCounts&) const = default;
};

// 4: the `cancelled` status, the `jobs` table (exact counts per job and status, kept by the sink
// in the same transaction as the rows; the pause flag), indexes on the rare statuses and on
// errors; 3: no scheduler indexes (the sink keeps ready rows and leases in memory); 2: `topics`
// is a rowid table (1 was WITHOUT ROWID). apply_schema migrates older files once.
inline constexpr int kSchemaVersion = 4;

// WAL, synchronous=NORMAL (a SIGKILLed process loses nothing committed), the tables.
// Idempotent; migrates older versions once. Throws SqliteError, e.g. when the file is not a
// database.
void apply_schema(sqlite::Database& db);

// Opens (creating) the sink's database; a missing directory or an unwritable path gives a
// one-line SqliteError naming the path. Waits up to kOpenBusyTimeoutMs for other connections'
// locks (the returned connection keeps that busy timeout).
inline constexpr int kOpenBusyTimeoutMs = 10000;
[[nodiscard]] sqlite::Database open_for_writing(const std::string& path);
// Opens an existing database without writing it (for `topicflow status`).
[[nodiscard]] sqlite::Database open_read_only(const std::string& path);

struct JobCounts {
  std::string job;
  std::array<std::uint64_t, kStatusCount> by_status{};  // indexed by Status
  bool paused = false;
  std::int64_t created_at = 0;
  std::int64_t updated_at = 0;
  [[nodiscard]] std::uint64_t total() const noexcept {
    std::uint64_t t = 0;
    for (auto v : by_status) t += v;
    return t;
  }
  [[nodiscard]] std::uint64_t count(Status s) const noexcept {
    return by_status[static_cast<std::size_t>(s)];
  }
};

// Counts per status for every job (or only `job`), ordered by job name: read from the `jobs`
// table, O(jobs), never a scan of `topics`.
[[nodiscard]] std::vector<JobCounts> read_counts(
    sqlite::Database& db, const std::optional<std::string>& job = std::nullopt);

struct ErrorRow {
  std::string job;
  std::string key;
  std::string status;
  std::int64_t attempts = 0;
  std::string error;
  std::int64_t updated_at = 0;
};

// The most recent rows that carry an error, newest first (a walk of the topics_errors index).
[[nodiscard]] std::vector<ErrorRow> recent_errors(sqlite::Database& db,
                                                  const std::optional<std::string>& job, int limit);

}  // namespace topicflow::store
