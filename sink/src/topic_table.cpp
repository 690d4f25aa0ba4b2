#include "topic_table.hpp"

#include <topicflow/store.hpp>

#include <cassert>

namespace topicflow::sink {

using store::Status;

TopicTable::TopicTable(sqlite::Database& db)
    : db_(db),
      select_row_(db,
                  "SELECT status, attempts, due_at, error, submission, worker, rowid, "
                  "attempts_base FROM topics WHERE job = ?1 AND key = ?2"),
      insert_row_(db,
                  "INSERT INTO topics(job, key, payload, status, attempts, error, updated_at, "
                  "created_at, submission, due_at, worker) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10) "
                  "ON CONFLICT(job, key) DO NOTHING"),
      // The guard: a completed row never changes; a failed row changes only by an explicit
      // requeue; otherwise attempts never go down.
      update_row_(db,
                  "UPDATE topics SET status = ?3, attempts = ?4, error = ?5, updated_at = ?6, "
                  "submission = ?7, due_at = ?8, worker = ?9, attempts_base = ?16, "
                  "payload = iif(?10, ?11, payload), result = iif(?12, ?13, result) "
                  "WHERE rowid = ?15 AND job = ?1 AND key = ?2 AND status <> 'completed' AND "
                  "((status <> 'failed' AND status <> 'cancelled' AND attempts <= ?4) OR "
                  "(?14 AND (status = 'failed' OR status = 'cancelled')))"),
      // The two writes of an attempt's normal life (its first report: running, or completed at
      // once), each setting only what its transition changes (fewer bindings and expressions
      // than the generic UPDATE) under the same guard with requeue off. They write the attempt
      // too: the row held the previous one while the task was in transit.
      run_row_(db,
               "UPDATE topics SET status = 'running', attempts = ?6, due_at = ?3, "
               "updated_at = ?4, worker = ?5 WHERE rowid = ?7 AND job = ?1 AND key = ?2 AND "
               "status <> 'completed' AND status <> 'failed' AND status <> 'cancelled' AND "
               "attempts <= ?6"),
      complete_row_(db,
                    "UPDATE topics SET status = 'completed', attempts = ?6, result = ?3, "
                    "error = NULL, updated_at = ?4, due_at = NULL, worker = ?5 WHERE rowid = ?7 "
                    "AND job = ?1 AND key = ?2 AND status <> 'completed' AND "
                    "status <> 'failed' AND status <> 'cancelled' AND attempts <= ?6"),
      requeue_job_(db,
                   "UPDATE topics SET status = 'pending', attempts_base = attempts, due_at = ?2, "
                   "updated_at = ?2 WHERE job = ?1 AND status = 'failed' RETURNING rowid"),
      select_ready_(db,
                    "SELECT job, key, payload, status, attempts, due_at, error, submission, "
                    "worker, attempts_base FROM topics WHERE rowid = ?1"),
      scan_unfinished_(db,
                       "SELECT rowid, job, key, status, attempts, due_at, error, submission, "
                       "worker, attempts_base FROM topics WHERE status = 'pending' OR "
                       "status = 'running'"),
      add_job_counts_(
          db,
          "INSERT INTO jobs(name, pending, running, completed, failed, cancelled, "
          "created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) "
          "ON CONFLICT(name) DO UPDATE SET pending = pending + excluded.pending, "
          "running = running + excluded.running, "
          "completed = completed + excluded.completed, "
          "failed = failed + excluded.failed, "
          "cancelled = cancelled + excluded.cancelled, updated_at = excluded.updated_at"),
      set_paused_(db, "UPDATE jobs SET paused = ?2, updated_at = ?3 WHERE name = ?1"),
      // (the job's rows through the primary key: a seek to the job, then its rows)
      // (one statement per status: RETURNING gives the new values, not the old status)
      cancel_pending_(db,
                      "UPDATE topics SET status = 'cancelled', due_at = NULL, updated_at = ?2 "
                      "WHERE job = ?1 AND status = 'pending' RETURNING rowid, key"),
      cancel_running_(db,
                      "UPDATE topics SET status = 'cancelled', due_at = NULL, updated_at = ?2 "
                      "WHERE job = ?1 AND status = 'running' RETURNING rowid, key"),
      record_attempt_(db, "UPDATE topics SET attempts = max(attempts, ?2) WHERE rowid = ?1"),
      delete_topics_(db, "DELETE FROM topics WHERE job = ?1"),
      delete_job_(db, "DELETE FROM jobs WHERE name = ?1"),
      paused_jobs_(db, "SELECT name FROM jobs WHERE paused <> 0"),
      job_state_(db,
                 "SELECT pending, running, completed, failed, cancelled, paused FROM jobs "
                 "WHERE name = ?1"),
      get_meta_(db, "SELECT value FROM meta WHERE name = ?1"),
      set_meta_(db,
                "INSERT INTO meta(name, value) VALUES (?1, ?2) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value") {}

Row TopicTable::load(std::string_view job, std::string_view key) {
  Row row;
  select_row_.bind_static(1, job).bind_static(2, key);
  if (select_row_.step()) {
    row.exists = true;
    row.status = store::parse_status(select_row_.column_text(0)).value_or(Status::pending);
    row.attempts = select_row_.column_int(1);
    if (!select_row_.is_null(2)) row.due_at = select_row_.column_int(2);
    if (!select_row_.is_null(3)) row.error = std::string(select_row_.column_text(3));
    row.submission = std::string(select_row_.column_text(4));
    row.worker = std::string(select_row_.column_text(5));
    row.rowid = select_row_.column_int(6);
    row.attempts_base = select_row_.column_int(7);
  }
  select_row_.reset();
  return row;
}

TopicTable::Narrow TopicTable::narrow_write(const Row& before, const Row& row) {
  if (!before.exists || row.requeued || row.new_payload || row.attempts < before.attempts ||
      row.attempts_base != before.attempts_base || row.submission != before.submission ||
      store::is_terminal(before.status)) {
    return Narrow::none;
  }
  const bool same_attempt = row.attempts == before.attempts;
  switch (row.status) {
    case Status::running:
      return same_attempt && !row.new_result && !row.sent_at && row.due_at &&
                     row.error == before.error
                 ? Narrow::run
                 : Narrow::none;
    case Status::completed:
      return same_attempt && row.new_result && !row.sent_at && !row.due_at && !row.error
                 ? Narrow::complete
                 : Narrow::none;
    case Status::pending:
    case Status::failed:
    case Status::cancelled: return Narrow::none;
  }
  return Narrow::none;
}

bool TopicTable::step_update(sqlite::Statement& stmt) {
  stmt.step();
  const auto changed = db_.changes();
  stmt.reset();
  return changed == 1;
}

bool TopicTable::update_narrow(Narrow kind, std::string_view job, std::string_view key,
                               const Row& row, std::int64_t now) {
  switch (kind) {
    case Narrow::run:
      run_row_.bind_static(1, job).bind_static(2, key).bind(3, *row.due_at).bind(4, now);
      run_row_.bind_static(5, row.worker).bind(6, row.attempts).bind(7, row.rowid);
      return step_update(run_row_);
    case Narrow::complete:
      complete_row_.bind_static(1, job).bind_static(2, key);
      complete_row_.bind_blob_static(3, *row.new_result).bind(4, now);
      complete_row_.bind_static(5, row.worker).bind(6, row.attempts).bind(7, row.rowid);
      return step_update(complete_row_);
    case Narrow::none: break;
  }
  return false;
}

namespace {
void bind_opt(sqlite::Statement& s, int i, const std::optional<std::int64_t>& v) {
  if (v) {
    s.bind(i, *v);
  } else {
    s.bind_null(i);
  }
}
void bind_opt(sqlite::Statement& s, int i, const std::optional<std::string>& v) {
  if (v) {
    s.bind_static(i, *v);
  } else {
    s.bind_null(i);
  }
}
}  // namespace

bool TopicTable::insert(std::string_view job, std::string_view key, Row& row, std::int64_t now) {
  insert_row_.bind_static(1, job).bind_static(2, key);
  insert_row_.bind_blob_static(
      3, row.new_payload ? std::string_view(*row.new_payload) : std::string_view());
  insert_row_.bind_static(4, store::to_string(row.status)).bind(5, row.attempts);
  bind_opt(insert_row_, 6, row.error);
  insert_row_.bind(7, now).bind_static(8, row.submission);
  bind_opt(insert_row_, 9, row.due_at);
  insert_row_.bind_static(10, row.worker);
  insert_row_.step();
  const auto inserted = db_.changes();
  insert_row_.reset();
  if (inserted != 1) return false;
  row.rowid = db_.last_insert_rowid();
  return true;
}

bool TopicTable::update(std::string_view job, std::string_view key, const Row& row,
                        std::int64_t now) {
  auto& u = update_row_;
  u.bind_static(1, job).bind_static(2, key).bind_static(3, store::to_string(row.status));
  u.bind(4, row.attempts);
  bind_opt(u, 5, row.error);
  u.bind(6, now).bind_static(7, row.submission);
  bind_opt(u, 8, row.due_at);
  u.bind_static(9, row.worker);
  u.bind(10, std::int64_t{row.new_payload.has_value()});
  if (row.new_payload) {
    u.bind_blob_static(11, *row.new_payload);
  } else {
    u.bind_null(11);
  }
  u.bind(12, std::int64_t{row.new_result.has_value()});
  if (row.new_result) {
    u.bind_blob_static(13, *row.new_result);
  } else {
    u.bind_null(13);
  }
  u.bind(14, std::int64_t{row.requeued}).bind(15, row.rowid).bind(16, row.attempts_base);
  return step_update(u);
}

TopicTable::Write TopicTable::write(std::string_view job, std::string_view key, const Row& before,
                                    Row& row, std::int64_t now) {
  // In transit lives in the sink's memory only: no write hands a task out.
  assert(!row.sent_at);
  if (const auto narrow = narrow_write(before, row); narrow != Narrow::none) {
    return update_narrow(narrow, job, key, row, now) ? Write::written : Write::refused;
  }
  if (!before.exists) return insert(job, key, row, now) ? Write::written : Write::exists;
  return update(job, key, row, now) ? Write::written : Write::refused;
}

std::vector<std::int64_t> TopicTable::requeue_failed(std::string_view job, std::int64_t now) {
  std::vector<std::int64_t> rowids;
  requeue_job_.bind_static(1, job).bind(2, now);
  while (requeue_job_.step()) rowids.push_back(requeue_job_.column_int(0));
  requeue_job_.reset();
  return rowids;
}

namespace {
// The row's state from the columns status, attempts, due_at, error, submission, worker at
// `first` onwards.
Row read_row(const sqlite::Statement& q, int first, std::int64_t rowid) {
  Row row;
  row.exists = true;
  row.rowid = rowid;
  row.status = store::parse_status(q.column_text(first)).value_or(Status::pending);
  row.attempts = q.column_int(first + 1);
  if (!q.is_null(first + 2)) row.due_at = q.column_int(first + 2);
  if (!q.is_null(first + 3)) row.error = std::string(q.column_text(first + 3));
  row.submission = std::string(q.column_text(first + 4));
  row.worker = std::string(q.column_text(first + 5));
  row.attempts_base = q.column_int(first + 6);
  return row;
}
}  // namespace

std::optional<TopicTable::Task> TopicTable::load_task(std::int64_t rowid) {
  select_ready_.bind(1, rowid);
  std::optional<Task> task;
  if (select_ready_.step()) {
    task.emplace();
    task->job = std::string(select_ready_.column_text(0));
    task->key = std::string(select_ready_.column_text(1));
    task->payload = std::string(select_ready_.column_blob(2));
    task->row = read_row(select_ready_, 3, rowid);
  }
  select_ready_.reset();
  return task;
}

void TopicTable::scan_unfinished(
    const std::function<void(std::string_view job, std::string_view key, const Row& row)>& f) {
  while (scan_unfinished_.step()) {
    const auto row = read_row(scan_unfinished_, 3, scan_unfinished_.column_int(0));
    f(scan_unfinished_.column_text(1), scan_unfinished_.column_text(2), row);
  }
  scan_unfinished_.reset();
}

void TopicTable::add_job_counts(std::string_view job, const store::StatusCounts& delta,
                                std::int64_t now) {
  auto& q = add_job_counts_;
  q.bind_static(1, job);
  for (const auto status : store::kStatuses) {
    q.bind(2 + static_cast<int>(status), delta[status]);
  }
  q.bind(7, now);
  q.step();
  q.reset();
}

bool TopicTable::set_paused(std::string_view job, bool paused, std::int64_t now) {
  set_paused_.bind_static(1, job).bind(2, std::int64_t{paused}).bind(3, now);
  set_paused_.step();
  const auto changed = db_.changes();
  set_paused_.reset();
  return changed == 1;
}

std::vector<TopicTable::Cancelled> TopicTable::cancel_job(std::string_view job, std::int64_t now) {
  std::vector<Cancelled> out;
  for (auto* q : {&cancel_pending_, &cancel_running_}) {
    const auto was = q == &cancel_pending_ ? Status::pending : Status::running;
    q->bind_static(1, job).bind(2, now);
    while (q->step())
      out.push_back(Cancelled{q->column_int(0), std::string(q->column_text(1)), was});
    q->reset();
  }
  return out;
}

void TopicTable::record_attempt(std::int64_t rowid, std::int64_t attempt) {
  record_attempt_.bind(1, rowid).bind(2, attempt);
  record_attempt_.step();
  record_attempt_.reset();
}

std::int64_t TopicTable::delete_job(std::string_view job) {
  delete_topics_.bind_static(1, job);
  delete_topics_.step();
  const auto n = db_.changes();
  delete_topics_.reset();
  delete_job_.bind_static(1, job);
  delete_job_.step();
  delete_job_.reset();
  return n;
}

std::optional<TopicTable::JobState> TopicTable::job_state(std::string_view job) {
  std::optional<JobState> state;
  job_state_.bind_static(1, job);
  if (job_state_.step()) {
    state.emplace();
    for (const auto status : store::kStatuses) {
      state->counts[status] = job_state_.column_int(static_cast<int>(status));
    }
    state->paused = job_state_.column_int(5) != 0;
  }
  job_state_.reset();
  return state;
}

std::vector<std::string> TopicTable::paused_jobs() {
  std::vector<std::string> jobs;
  while (paused_jobs_.step()) jobs.emplace_back(paused_jobs_.column_text(0));
  paused_jobs_.reset();
  return jobs;
}

std::optional<std::string> TopicTable::meta(std::string_view name) {
  get_meta_.bind_static(1, name);
  std::optional<std::string> value;
  if (get_meta_.step()) value = std::string(get_meta_.column_text(0));
  get_meta_.reset();
  return value;
}

void TopicTable::set_meta(std::string_view name, std::string_view value) {
  set_meta_.bind_static(1, name).bind_static(2, value);
  set_meta_.step();
  set_meta_.reset();
}

}  // namespace topicflow::sink
