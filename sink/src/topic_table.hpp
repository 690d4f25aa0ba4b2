#pragma once
// The sink's statements over the `topics` and `meta` tables: reading a row's state, writing a
// row's new state (an INSERT for a new topic, else a guarded UPDATE by rowid), an operator's
// whole-job requeue, the scheduler's reads (a ready row's task by rowid; the unfinished rows at
// start) and the meta values. Prepared once and reused. Every UPDATE carries the
// guard that keeps transitions monotonic in SQL, whatever the state machine decided: a
// completed row never changes, a failed row changes only by an explicit requeue, attempts never
// go down. Needs an open transaction for writes (the caller's); throws BusyError and
// SqliteError as sqlite.hpp does. Not thread-safe (one writer connection).

#include <topicflow/sink_state.hpp>
#include <topicflow/sqlite.hpp>
#include <topicflow/store.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace topicflow::sink {

class TopicTable {
 public:
  explicit TopicTable(sqlite::Database& db);

  [[nodiscard]] sqlite::Database& database() noexcept { return db_; }

  // The row of job/key as the database has it (Row::exists false when there is none).
  [[nodiscard]] Row load(std::string_view job, std::string_view key);

  enum class Write : std::uint8_t {
    written,
    exists,   // `before` said "no row", but the INSERT found one: nothing changed
    refused,  // the SQL guard refused the UPDATE (the state machine got it wrong)
  };
  // Writes `row` (the state after the events) over `before` (the state they were applied to):
  // INSERT when `before` does not exist (ON CONFLICT DO NOTHING), else a guarded UPDATE by
  // rowid, a narrow one (setting only what changed) for the two writes of an attempt's normal
  // life. Sets row.rowid after an INSERT.
  Write write(std::string_view job, std::string_view key, const Row& before, Row& row,
              std::int64_t now);

  // failed -> pending with a fresh set of attempts for every failed topic of `job`, due `now`;
  // returns their rowids.
  std::vector<std::int64_t> requeue_failed(std::string_view job, std::int64_t now);

  // What the scheduler reads to hand a ready row out: the row by rowid, with its payload.
  struct Task {
    std::string job;
    std::string key;
    std::string payload;
    Row row;
  };
  [[nodiscard]] std::optional<Task> load_task(std::int64_t rowid);
  // Calls f for every pending or running row (one scan of the table, at start).
  void scan_unfinished(
      const std::function<void(std::string_view job, std::string_view key, const Row& row)>& f);

  // The `jobs` table: a commit's count changes of one job (creating its row), the pause flag
  // (false when the job has no row), the paused jobs.
  void add_job_counts(std::string_view job, const store::StatusCounts& delta, std::int64_t now);
  bool set_paused(std::string_view job, bool paused, std::int64_t now);
  struct JobState {
    store::StatusCounts counts;
    bool paused = false;
  };
  [[nodiscard]] std::optional<JobState> job_state(std::string_view job);
  [[nodiscard]] std::vector<std::string> paused_jobs();
  // Every pending or running topic of `job` becomes cancelled; returns them as they were.
  struct Cancelled {
    std::int64_t rowid = 0;
    std::string key;
    store::Status was = store::Status::pending;
  };
  std::vector<Cancelled> cancel_job(std::string_view job, std::int64_t now);
  // Records that `attempt` of the row was handed out (a cancelled task in transit: a later
  // attempt of the topic must not reuse its number).
  void record_attempt(std::int64_t rowid, std::int64_t attempt);
  // Removes the job's topics and its counts; returns how many topics.
  std::int64_t delete_job(std::string_view job);

  [[nodiscard]] std::optional<std::string> meta(std::string_view name);
  void set_meta(std::string_view name, std::string_view value);

  // Which narrow UPDATE writes the change from `before` to `row`, if any (public for tests).
  enum class Narrow : std::uint8_t { none, run, complete };
  [[nodiscard]] static Narrow narrow_write(const Row& before, const Row& row);

 private:
  bool step_update(sqlite::Statement& stmt);
  bool update_narrow(Narrow kind, std::string_view job, std::string_view key, const Row& row,
                     std::int64_t now);
  bool insert(std::string_view job, std::string_view key, Row& row, std::int64_t now);
  bool update(std::string_view job, std::string_view key, const Row& row, std::int64_t now);

  sqlite::Database& db_;
  sqlite::Statement select_row_;
  sqlite::Statement insert_row_;
  sqlite::Statement update_row_;
  sqlite::Statement run_row_;
  sqlite::Statement complete_row_;
  sqlite::Statement requeue_job_;
  sqlite::Statement select_ready_;
  sqlite::Statement scan_unfinished_;
  sqlite::Statement add_job_counts_;
  sqlite::Statement set_paused_;
  sqlite::Statement cancel_pending_;
  sqlite::Statement cancel_running_;
  sqlite::Statement record_attempt_;
  sqlite::Statement delete_topics_;
  sqlite::Statement delete_job_;
  sqlite::Statement paused_jobs_;
  sqlite::Statement job_state_;
  sqlite::Statement get_meta_;
  sqlite::Statement set_meta_;
};

}  // namespace topicflow::sink
