#include <topicflow/store.hpp>

#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace topicflow::store {

std::optional<Status> parse_status(std::string_view text) noexcept {
  for (std::size_t i = 0; i < kStatusNames.size(); ++i) {
    if (kStatusNames[i] == text) return static_cast<Status>(i);
  }
  return std::nullopt;
}

namespace {

// The columns of `topics`, in order, for CREATE TABLE (new file or migration).
constexpr std::string_view kTopicsColumns = R"sql(
  job           TEXT    NOT NULL,
  key           TEXT    NOT NULL,
  payload       BLOB,
  -- spelled with OR, not IN: an IN list makes every UPDATE of status build an ephemeral table
  status        TEXT    NOT NULL CHECK (status = 'pending' OR status = 'running' OR
                                        status = 'completed' OR status = 'failed' OR
                                        status = 'cancelled'),
  attempts      INTEGER NOT NULL DEFAULT 0,
  attempts_base INTEGER NOT NULL DEFAULT 0, -- attempts before the last requeue (budget base)
  result        BLOB,
  error         TEXT,
  updated_at    INTEGER NOT NULL,
  created_at    INTEGER NOT NULL,
  submission    TEXT,
  due_at        INTEGER,
  dispatched_at INTEGER,
  worker        TEXT,
  PRIMARY KEY (job, key)
)sql";

// A rowid table: (job, key) is the primary key (a unique index), and the row itself is keyed by
// its integer rowid. The sink keeps the rowid of every row it has read or written and writes by
// rowid: an integer seek instead of a seek by two text columns, and the two partial indexes
// below hold (due_at, rowid) instead of (due_at, job, key). Measured: -29 % of SQLite's
// instructions for the three writes a topic took then (docs/benchmarks.md).
std::string create_topics(std::string_view name) {
  return "CREATE TABLE IF NOT EXISTS " + std::string(name) + " (" + std::string(kTopicsColumns) +
         ");";
}

// Version 1 files (WITHOUT ROWID, keyed by (job, key)) are rebuilt once, in one transaction.
void migrate_without_rowid(sqlite::Database& db) {
  auto check = db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'topics'");
  if (!check.step()) return;
  std::string sql(check.column_text(0));
  check.reset();
  for (auto& c : sql) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (sql.find("WITHOUT ROWID") == std::string::npos) return;
  constexpr std::string_view kColumns =
      "job, key, payload, status, attempts, result, error, updated_at, created_at, submission, "
      "due_at, "
      "dispatched_at, worker";
  sqlite::Transaction tx(db);
  db.exec("DROP TABLE IF EXISTS topics_v2");
  db.exec(create_topics("topics_v2"));
  db.exec("INSERT INTO topics_v2(" + std::string(kColumns) + ") SELECT " + std::string(kColumns) +
          " FROM topics");
  db.exec("DROP TABLE topics");  // and its indexes, recreated by apply_schema
  db.exec("ALTER TABLE topics_v2 RENAME TO topics");
  db.exec("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)");
  db.exec(
      "INSERT INTO meta(name, value) VALUES ('schema_version', '2') "
      "ON CONFLICT(name) DO UPDATE SET value = excluded.value");
  tx.commit();
}

// The schema version a file says it has (2 when it has a topics table but no version yet).
int file_version(sqlite::Database& db) {
  auto meta =
      db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'");
  meta.step();
  if (meta.column_int(0) == 0) return 0;
  auto version = db.prepare("SELECT value FROM meta WHERE name = 'schema_version'");
  if (!version.step()) return 2;
  return static_cast<int>(std::strtol(std::string(version.column_text(0)).c_str(), nullptr, 10));
}

void set_version(sqlite::Database& db, int version) {
  db.exec("INSERT INTO meta(name, value) VALUES ('schema_version', '" + std::to_string(version) +
          "') ON CONFLICT(name) DO UPDATE SET value = excluded.value");
}

// Version 3: the sink's scheduler keeps ready rows and leases in memory (rebuilt from one scan
// at start), so the two partial indexes it kept on the write path go. Tasks in transit had
// already moved to memory; a file from an older sink may hold rows it marked in transit
// (dispatched_at set, attempts already raised): they are made ready with the attempt before,
// so the same attempt is sent again and a report of it is still accepted.
void migrate_to_v3(sqlite::Database& db) {
  sqlite::Transaction tx(db);
  db.exec("DROP INDEX IF EXISTS topics_timer");
  db.exec("DROP INDEX IF EXISTS topics_ready");
  db.exec(
      "UPDATE topics SET dispatched_at = NULL, attempts = max(attempts - 1, 0) "
      "WHERE dispatched_at IS NOT NULL");
  set_version(db, 3);
  tx.commit();
}

// The tables and indexes version 4 adds beside `topics`.
constexpr std::string_view kVersion4Objects = R"sql(
-- Exact counts per job and status, changed by the sink in the same transaction as the rows: the
-- API, `topicflow status` and the sink's start read them in O(jobs), never by scanning topics.
CREATE TABLE IF NOT EXISTS jobs (
  name       TEXT    PRIMARY KEY,
  pending    INTEGER NOT NULL DEFAULT 0,
  running    INTEGER NOT NULL DEFAULT 0,
  completed  INTEGER NOT NULL DEFAULT 0,
  failed     INTEGER NOT NULL DEFAULT 0,
  cancelled  INTEGER NOT NULL DEFAULT 0,
  paused     INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
-- Pages of a job's failed or cancelled topics in key order, and the latest errors, are index
-- walks. Partial indexes on what is rare: a topic's normal life (pending, running, completed,
-- no error) never touches them.
CREATE INDEX IF NOT EXISTS topics_failed ON topics(job, key) WHERE status = 'failed';
CREATE INDEX IF NOT EXISTS topics_cancelled ON topics(job, key) WHERE status = 'cancelled';
CREATE INDEX IF NOT EXISTS topics_errors ON topics(updated_at) WHERE error IS NOT NULL;
)sql";

constexpr std::string_view kCountJobs = R"sql(
INSERT INTO jobs(name, pending, running, completed, failed, cancelled, created_at, updated_at)
  SELECT job, sum(status = 'pending'), sum(status = 'running'), sum(status = 'completed'),
         sum(status = 'failed'), sum(status = 'cancelled'), min(created_at), max(updated_at)
  FROM topics GROUP BY job;
)sql";

// Version 4: the `cancelled` status needs a new CHECK constraint, so `topics` is rebuilt once
// (rowids kept), then the jobs table is filled by one scan.
void migrate_to_v4(sqlite::Database& db) {
  constexpr std::string_view kColumns =
      "rowid, job, key, payload, status, attempts, result, error, updated_at, created_at, "
      "submission, due_at, dispatched_at, worker";
  sqlite::Transaction tx(db);
  db.exec("DROP TABLE IF EXISTS topics_v4");
  db.exec(create_topics("topics_v4"));
  db.exec("INSERT INTO topics_v4(" + std::string(kColumns) + ") SELECT " + std::string(kColumns) +
          " FROM topics");
  db.exec("DROP TABLE topics");
  db.exec("ALTER TABLE topics_v4 RENAME TO topics");
  db.exec(std::string(kVersion4Objects));
  db.exec("DELETE FROM jobs");
  db.exec(std::string(kCountJobs));
  set_version(db, 4);
  tx.commit();
}

}  // namespace

void apply_schema(sqlite::Database& db) {
  db.exec("PRAGMA journal_mode=WAL");
  db.exec("PRAGMA synchronous=NORMAL");
  migrate_without_rowid(db);
  const bool fresh = file_version(db) == 0 && [&] {
    auto t =
        db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'topics'");
    t.step();
    return t.column_int(0) == 0;
  }();
  db.exec(create_topics("topics"));
  db.exec("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)");
  if (fresh) {
    db.exec(std::string(kVersion4Objects));
    set_version(db, kSchemaVersion);
    return;
  }
  if (file_version(db) < 3) migrate_to_v3(db);
  if (file_version(db) < 4) migrate_to_v4(db);
}

sqlite::Database open_for_writing(const std::string& path) {
  sqlite::Database db(path, sqlite::OpenMode::read_write_create);
  // Switching a new file to WAL needs an exclusive lock: without a busy timeout a reader that
  // merely has the file open (`topicflow status`, a test polling counts, a backup) made the
  // sink exit at startup with "database is locked". Callers with their own busy handling (the
  // sink) set the timeout back to 0 after this.
  db.busy_timeout(kOpenBusyTimeoutMs);
  try {
    apply_schema(db);
  } catch (const sqlite::SqliteError& e) {
    throw sqlite::SqliteError(e.code(), "cannot use database '" + path + "': " + e.what());
  }
  return db;
}

sqlite::Database open_read_only(const std::string& path) {
  sqlite::Database db(path, sqlite::OpenMode::read_only);
  db.busy_timeout(2000);
  std::int64_t tables = 0;
  try {
    auto check =
        db.prepare("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='topics'");
    check.step();
    tables = check.column_int(0);
  } catch (const sqlite::BusyError&) {
    throw;
  } catch (const sqlite::SqliteError& e) {
    // e.g. "file is not a database": name the file, as for every other open failure.
    throw sqlite::SqliteError(e.code(), "cannot read database '" + path + "': " + e.what());
  }
  if (tables == 0) {
    throw sqlite::SqliteError(
        SQLITE_ERROR, "database '" + path + "' has no topics table (not a topicflow database?)");
  }
  return db;
}

namespace {
bool has_object(sqlite::Database& db, std::string_view type, std::string_view name) {
  auto q = db.prepare("SELECT count(*) FROM sqlite_master WHERE type = ?1 AND name = ?2");
  q.bind(1, type).bind(2, name);
  q.step();
  return q.column_int(0) > 0;
}

// A file the sink has not migrated to version 4 yet (read-only opens do not migrate).
std::vector<JobCounts> count_by_scan(sqlite::Database& db, const std::optional<std::string>& job) {
  auto stmt = db.prepare(
      job ? "SELECT job, status, count(*) FROM topics WHERE job = ?1 GROUP BY job, status "
            "ORDER BY job"
          : "SELECT job, status, count(*) FROM topics GROUP BY job, status ORDER BY job");
  if (job) stmt.bind(1, *job);
  std::vector<JobCounts> out;
  while (stmt.step()) {
    const auto name = stmt.column_text(0);
    if (out.empty() || out.back().job != name) out.push_back(JobCounts{std::string(name)});
    if (auto st = parse_status(stmt.column_text(1))) {
      out.back().by_status[static_cast<std::size_t>(*st)] =
          static_cast<std::uint64_t>(stmt.column_int(2));
    }
  }
  return out;
}
}  // namespace

std::vector<JobCounts> read_counts(sqlite::Database& db, const std::optional<std::string>& job) {
  if (!has_object(db, "table", "jobs")) return count_by_scan(db, job);
  auto stmt = db.prepare(
      job ? "SELECT name, pending, running, completed, failed, cancelled, paused, created_at, "
            "updated_at FROM jobs WHERE name = ?1"
          : "SELECT name, pending, running, completed, failed, cancelled, paused, created_at, "
            "updated_at FROM jobs ORDER BY name");
  if (job) stmt.bind(1, *job);
  std::vector<JobCounts> out;
  while (stmt.step()) {
    JobCounts c;
    c.job = std::string(stmt.column_text(0));
    for (std::size_t i = 0; i < kStatusCount; ++i) {
      c.by_status[i] = static_cast<std::uint64_t>(
          std::max<std::int64_t>(stmt.column_int(static_cast<int>(i) + 1), 0));
    }
    c.paused = stmt.column_int(6) != 0;
    c.created_at = stmt.column_int(7);
    c.updated_at = stmt.column_int(8);
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<ErrorRow> recent_errors(sqlite::Database& db, const std::optional<std::string>& job,
                                    int limit) {
  // (the index's WHERE is repeated so SQLite walks topics_errors backwards: no scan, no sort;
  // a file older than version 4 has no such index and is scanned)
  const std::string from = has_object(db, "index", "topics_errors")
                               ? "FROM topics INDEXED BY topics_errors "
                               : "FROM topics ";
  auto stmt =
      db.prepare("SELECT job, key, status, attempts, error, updated_at " + from +
                 (job ? "WHERE error IS NOT NULL AND job = ?2 " : "WHERE error IS NOT NULL ") +
                 "ORDER BY updated_at DESC LIMIT ?1");
  stmt.bind(1, static_cast<std::int64_t>(limit));
  if (job) stmt.bind(2, *job);
  std::vector<ErrorRow> out;
  while (stmt.step()) {
    out.push_back(ErrorRow{std::string(stmt.column_text(0)), std::string(stmt.column_text(1)),
                           std::string(stmt.column_text(2)), stmt.column_int(3),
                           std::string(stmt.column_text(4)), stmt.column_int(5)});
  }
  return out;
}

}  // namespace topicflow::store
