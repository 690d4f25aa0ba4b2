// Unit tests of the topics store (common/src/store.cpp): schema, pragmas, constraints, and the
// read-only queries behind `topicflow status`.

#include <topicflow/store.hpp>

#include "support/temp_dir.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace sql = topicflow::sqlite;
namespace store = topicflow::store;
namespace fs = std::filesystem;

namespace {

using TempDir = topicflow::testing::TempDir;

std::string pragma(sql::Database& db, const std::string& name) {
  auto stmt = db.prepare("PRAGMA " + name);
  EXPECT_TRUE(stmt.step()) << "PRAGMA " << name << " returns a row";
  return std::string(stmt.column_text(0));
}

struct Row {
  std::string job;
  std::string key;
  std::string status;
  std::int64_t attempts = 0;
  std::optional<std::string> error;
  std::int64_t updated_at = 0;
};

void insert(sql::Database& db, const Row& row) {
  auto stmt = db.prepare(
      "INSERT INTO topics(job, key, payload, status, attempts, error, updated_at, created_at) "
      "VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?6)");
  stmt.bind(1, row.job)
      .bind(2, row.key)
      .bind(3, row.status)
      .bind(4, row.attempts)
      .bind(6, row.updated_at);
  if (row.error) {
    stmt.bind(5, *row.error);
  } else {
    stmt.bind_null(5);
  }
  (void)stmt.step();
  // ... and its job's counts, as the sink keeps them in the same transaction
  auto count = db.prepare("INSERT INTO jobs(name, " + row.status +
                          ", created_at, updated_at) VALUES (?1, 1, ?2, ?2) "
                          "ON CONFLICT(name) DO UPDATE SET " +
                          row.status + " = " + row.status + " + 1");
  count.bind(1, row.job).bind(2, row.updated_at);
  (void)count.step();
}

}  // namespace

TEST(StoreStatus, NamesRoundTrip) {
  for (auto s : {store::Status::pending, store::Status::running, store::Status::completed,
                 store::Status::failed}) {
    const auto name = store::to_string(s);
    const auto parsed = store::parse_status(name);
    ASSERT_TRUE(parsed.has_value()) << name;
    EXPECT_EQ(*parsed, s) << name;
  }
  EXPECT_EQ(store::to_string(store::Status::pending), "pending");
  EXPECT_EQ(store::to_string(store::Status::running), "running");
  EXPECT_EQ(store::to_string(store::Status::completed), "completed");
  EXPECT_EQ(store::to_string(store::Status::failed), "failed");
  EXPECT_FALSE(store::parse_status("done").has_value());
  EXPECT_FALSE(store::parse_status("").has_value());
  EXPECT_FALSE(store::parse_status("Pending").has_value()) << "status names are exact";
  EXPECT_FALSE(store::is_terminal(store::Status::pending));
  EXPECT_FALSE(store::is_terminal(store::Status::running));
  EXPECT_TRUE(store::is_terminal(store::Status::completed));
  EXPECT_TRUE(store::is_terminal(store::Status::failed));
}

TEST(StoreSchema, ApplyIsIdempotentAndKeepsData) {
  TempDir dir;
  const auto path = dir.file("topics.db");
  auto db = store::open_for_writing(path);
  insert(db, {"job", "k1", "pending", 0, std::nullopt, 1});
  ASSERT_NO_THROW(store::apply_schema(db)) << "second apply";
  ASSERT_NO_THROW(store::apply_schema(db)) << "third apply";
  auto reopened = store::open_for_writing(path);
  ASSERT_NO_THROW(store::apply_schema(reopened)) << "apply on a reopened database";
  auto count = reopened.prepare("SELECT count(*) FROM topics");
  ASSERT_TRUE(count.step());
  EXPECT_EQ(count.column_int(0), 1) << "re-applying the schema keeps the rows";
  auto version = reopened.prepare("SELECT value FROM meta WHERE name = 'schema_version'");
  ASSERT_TRUE(version.step()) << "meta has the schema version";
  EXPECT_EQ(version.column_text(0), std::to_string(store::kSchemaVersion));
  EXPECT_FALSE(version.step()) << "exactly one schema_version row";
}

// Files written before schema version 2 have a WITHOUT ROWID table; opening one rebuilds it as a
// rowid table (the sink writes rows by rowid), keeps every row and the meta table, and migrates
// on to the current version (no scheduler indexes since version 3).
TEST(StoreSchema, MigratesAVersionOneWithoutRowidTable) {
  TempDir dir;
  const auto path = dir.file("v1.db");
  {
    sql::Database old(path);
    old.exec(R"sql(
CREATE TABLE topics (
  job TEXT NOT NULL, key TEXT NOT NULL, payload BLOB,
  status TEXT NOT NULL CHECK (status = 'pending' OR status = 'running' OR status = 'completed' OR status = 'failed'),
  attempts INTEGER NOT NULL DEFAULT 0, result BLOB, error TEXT, updated_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL, submission TEXT, due_at INTEGER, dispatched_at INTEGER, worker TEXT,
  PRIMARY KEY (job, key)
) WITHOUT ROWID;
CREATE INDEX topics_timer ON topics(due_at) WHERE status = 'running' OR dispatched_at IS NOT NULL;
CREATE INDEX topics_ready ON topics(due_at) WHERE status = 'pending' AND dispatched_at IS NULL;
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1'), ('broker_instance', 'b1');
INSERT INTO topics VALUES ('j', 'a', x'01', 'completed', 1, x'02', NULL, 5, 4, 's', NULL, NULL, 'w'),
                          ('j', 'b', x'03', 'running', 2, NULL, 'boom', 7, 4, 's', 99, NULL, 'w');
)sql");
  }
  auto db = store::open_for_writing(path);
  auto kind = db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'topics'");
  ASSERT_TRUE(kind.step());
  EXPECT_EQ(std::string(kind.column_text(0)).find("WITHOUT ROWID"), std::string::npos);
  auto rows = db.prepare(
      "SELECT key, hex(payload), status, attempts, hex(result), error, due_at, rowid > 0 "
      "FROM topics ORDER BY key");
  ASSERT_TRUE(rows.step());
  EXPECT_EQ(rows.column_text(0), "a");
  EXPECT_EQ(rows.column_text(1), "01");
  EXPECT_EQ(rows.column_text(2), "completed");
  EXPECT_EQ(rows.column_text(4), "02");
  ASSERT_TRUE(rows.step());
  EXPECT_EQ(rows.column_text(0), "b");
  EXPECT_EQ(rows.column_int(3), 2);
  EXPECT_EQ(rows.column_text(5), "boom");
  EXPECT_EQ(rows.column_int(6), 99);
  EXPECT_EQ(rows.column_int(7), 1);
  EXPECT_FALSE(rows.step());
  auto indexes = db.prepare(
      "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN ('topics_timer', "
      "'topics_ready')");
  ASSERT_TRUE(indexes.step());
  EXPECT_EQ(indexes.column_int(0), 0) << "version 3 keeps no scheduler index on the write path";
  auto meta = db.prepare(
      "SELECT group_concat(name || '=' || value, ',') FROM (SELECT * FROM meta ORDER BY name)");
  ASSERT_TRUE(meta.step());
  EXPECT_EQ(meta.column_text(0),
            "broker_instance=b1,schema_version=" + std::to_string(store::kSchemaVersion));
  EXPECT_THROW(insert(db, {"j", "a", "pending", 0, std::nullopt, 1}), sql::SqliteError)
      << "(job, key) stays unique";
}

// An older sink marked tasks in transit in their rows (dispatched_at, attempts already raised);
// now that state lives in the sink's memory. Migrating such a file (version 2) makes those rows
// ready with the attempt before, so the same attempt is sent again; other rows are left alone.
TEST(StoreSchema, RowsMarkedInTransitByAnOlderSinkAreReadyAgain) {
  TempDir dir;
  const auto path = dir.file("transit.db");
  {
    auto db = store::open_for_writing(path);
    db.exec(R"sql(
INSERT INTO topics(job, key, status, attempts, updated_at, created_at, due_at, dispatched_at) VALUES
  ('j', 'transit', 'pending', 2, 1, 1, 5000, 4000),
  ('j', 'ready', 'pending', 1, 1, 1, 300, NULL),
  ('j', 'running', 'running', 3, 1, 1, 7000, NULL);
UPDATE meta SET value = '2' WHERE name = 'schema_version';  -- as an older sink left it
)sql");
  }
  auto db = store::open_for_writing(path);
  auto rows = db.prepare(
      "SELECT key, status, attempts, due_at, dispatched_at IS NULL FROM topics ORDER BY key");
  std::vector<std::string> got;
  while (rows.step()) {
    got.push_back(fmt::format("{} {} {} {} {}", rows.column_text(0), rows.column_text(1),
                              rows.column_int(2), rows.column_int(3), rows.column_int(4)));
  }
  EXPECT_EQ(got, (std::vector<std::string>{"ready pending 1 300 1", "running running 3 7000 1",
                                           "transit pending 1 5000 1"}));
}

TEST(StoreSchema, WalAndSpecColumns) {
  TempDir dir;
  auto db = store::open_for_writing(dir.file("wal.db"));
  EXPECT_EQ(pragma(db, "journal_mode"), "wal");
  EXPECT_EQ(pragma(db, "synchronous"), "1") << "synchronous=NORMAL";
  // The spec fixes these column names: scripts and tests outside the project read them.
  std::vector<std::string> columns;
  auto info = db.prepare("SELECT name FROM pragma_table_info('topics')");
  while (info.step()) columns.emplace_back(info.column_text(0));
  for (const char* required :
       {"job", "key", "payload", "status", "attempts", "result", "error", "updated_at"}) {
    EXPECT_NE(std::find(columns.begin(), columns.end(), required), columns.end())
        << "column " << required;
  }
  auto pk = db.prepare("SELECT name FROM pragma_table_info('topics') WHERE pk > 0 ORDER BY pk");
  std::vector<std::string> key;
  while (pk.step()) key.emplace_back(pk.column_text(0));
  EXPECT_EQ(key, (std::vector<std::string>{"job", "key"})) << "primary key (job, key)";
}

TEST(StoreSchema, CheckRejectsABadStatus) {
  TempDir dir;
  auto db = store::open_for_writing(dir.file("check.db"));
  try {
    insert(db, {"job", "k", "done", 0, std::nullopt, 1});
    FAIL() << "status 'done' must violate the CHECK constraint";
  } catch (const sql::SqliteError& e) {
    EXPECT_EQ(e.code() & 0xff, SQLITE_CONSTRAINT) << "message: " << e.what();
  }
  for (const char* good : {"pending", "running", "completed", "failed"}) {
    EXPECT_NO_THROW(insert(db, {"job", std::string("k-") + good, good, 0, std::nullopt, 1}))
        << good;
  }
  EXPECT_THROW(insert(db, {"job", "k-pending", "pending", 0, std::nullopt, 1}), sql::SqliteError)
      << "(job, key) is the primary key";
}

TEST(StoreQueries, ReadCountsPerJobAndStatus) {
  TempDir dir;
  auto db = store::open_for_writing(dir.file("counts.db"));
  EXPECT_TRUE(store::read_counts(db).empty()) << "an empty table has no jobs";
  insert(db, {"beta", "1", "pending", 0, std::nullopt, 1});
  insert(db, {"beta", "2", "pending", 0, std::nullopt, 1});
  insert(db, {"beta", "3", "failed", 3, "boom", 1});
  insert(db, {"alpha", "1", "completed", 1, std::nullopt, 1});
  insert(db, {"alpha", "2", "running", 1, std::nullopt, 1});
  insert(db, {"alpha", "3", "completed", 2, std::nullopt, 1});
  insert(db, {"alpha", "4", "completed", 1, std::nullopt, 1});

  const auto all = store::read_counts(db);
  ASSERT_EQ(all.size(), 2U) << "two jobs";
  EXPECT_EQ(all[0].job, "alpha") << "ordered by job name";
  EXPECT_EQ(all[0].count(store::Status::pending), 0U);
  EXPECT_EQ(all[0].count(store::Status::running), 1U);
  EXPECT_EQ(all[0].count(store::Status::completed), 3U);
  EXPECT_EQ(all[0].count(store::Status::failed), 0U);
  EXPECT_EQ(all[0].total(), 4U);
  EXPECT_EQ(all[1].job, "beta");
  EXPECT_EQ(all[1].count(store::Status::pending), 2U);
  EXPECT_EQ(all[1].count(store::Status::failed), 1U);
  EXPECT_EQ(all[1].total(), 3U);

  const auto beta = store::read_counts(db, std::string("beta"));
  ASSERT_EQ(beta.size(), 1U) << "filtered to one job";
  EXPECT_EQ(beta[0].job, "beta");
  EXPECT_EQ(beta[0].total(), 3U);
  EXPECT_TRUE(store::read_counts(db, std::string("gamma")).empty())
      << "an unknown job has no counts";

  // A file the sink has not migrated yet has no jobs table: the counts come from a scan.
  db.exec("DROP TABLE jobs");
  const auto scanned = store::read_counts(db);
  ASSERT_EQ(scanned.size(), 2U);
  EXPECT_EQ(scanned[0].count(store::Status::completed), 3U);
  EXPECT_EQ(scanned[1].count(store::Status::failed), 1U);
}

// Version 4 rebuilds `topics` for the `cancelled` status and fills `jobs` from the rows.
TEST(StoreSchema, MigratingToVersionFourCountsEveryJobAndAllowsCancelled) {
  TempDir dir;
  const auto path = dir.file("v3.db");
  {
    auto db = store::open_for_writing(path);
    // make it look like a version 3 file: the old CHECK (no 'cancelled'), no jobs table
    db.exec(R"sql(
DROP TABLE jobs;
DROP INDEX topics_failed; DROP INDEX topics_cancelled; DROP INDEX topics_errors;
DROP TABLE topics;
CREATE TABLE topics (
  job TEXT NOT NULL, key TEXT NOT NULL, payload BLOB,
  status TEXT NOT NULL CHECK (status = 'pending' OR status = 'running' OR status = 'completed' OR status = 'failed'),
  attempts INTEGER NOT NULL DEFAULT 0, result BLOB, error TEXT, updated_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL, submission TEXT, due_at INTEGER, dispatched_at INTEGER, worker TEXT,
  PRIMARY KEY (job, key));
INSERT INTO topics(job, key, status, attempts, updated_at, created_at) VALUES
  ('a', '1', 'completed', 1, 9, 2), ('a', '2', 'failed', 2, 8, 3), ('b', '1', 'pending', 0, 7, 1);
UPDATE meta SET value = '3' WHERE name = 'schema_version';
)sql");
  }
  auto db = store::open_for_writing(path);
  const auto counts = store::read_counts(db);
  ASSERT_EQ(counts.size(), 2U);
  EXPECT_EQ(counts[0].count(store::Status::completed), 1U);
  EXPECT_EQ(counts[0].count(store::Status::failed), 1U);
  EXPECT_EQ(counts[0].created_at, 2);
  EXPECT_EQ(counts[0].updated_at, 9);
  EXPECT_EQ(counts[1].count(store::Status::pending), 1U);
  EXPECT_NO_THROW(db.exec("UPDATE topics SET status = 'cancelled' WHERE job = 'b'"))
      << "the new CHECK admits cancelled";
  EXPECT_THROW(db.exec("UPDATE topics SET status = 'lost' WHERE job = 'b'"), sql::SqliteError);
  EXPECT_EQ(pragma(db, "user_version"), "0");
  auto version = db.prepare("SELECT value FROM meta WHERE name = 'schema_version'");
  ASSERT_TRUE(version.step());
  EXPECT_EQ(version.column_text(0), "4");
}

TEST(StoreQueries, RecentErrorsNewestFirst) {
  TempDir dir;
  auto db = store::open_for_writing(dir.file("errors.db"));
  insert(db, {"a", "ok", "completed", 1, std::nullopt, 500});
  insert(db, {"a", "old", "failed", 3, "old error", 100});
  insert(db, {"a", "new", "failed", 5, "new error", 300});
  insert(db, {"a", "retrying", "pending", 1, "transient", 200});
  insert(db, {"b", "other", "failed", 1, "other job", 400});

  const auto all = store::recent_errors(db, std::nullopt, 10);
  ASSERT_EQ(all.size(), 4U) << "every row with an error, none without";
  EXPECT_EQ(all[0].key, "other") << "newest first";
  EXPECT_EQ(all[1].key, "new");
  EXPECT_EQ(all[2].key, "retrying") << "a pending row keeps its last error";
  EXPECT_EQ(all[3].key, "old");
  EXPECT_EQ(all[1].job, "a");
  EXPECT_EQ(all[1].status, "failed");
  EXPECT_EQ(all[1].attempts, 5);
  EXPECT_EQ(all[1].error, "new error");
  EXPECT_EQ(all[1].updated_at, 300);

  const auto limited = store::recent_errors(db, std::nullopt, 2);
  ASSERT_EQ(limited.size(), 2U) << "limit 2";
  EXPECT_EQ(limited[0].key, "other");
  EXPECT_EQ(limited[1].key, "new");

  const auto job_a = store::recent_errors(db, std::string("a"), 10);
  ASSERT_EQ(job_a.size(), 3U) << "job filter";
  for (const auto& row : job_a) EXPECT_EQ(row.job, "a") << "key " << row.key;
  EXPECT_TRUE(store::recent_errors(db, std::string("zzz"), 10).empty());
}

TEST(StoreOpen, ReadOnlyOfAMissingFileFailsWithoutCreatingIt) {
  TempDir dir;
  const auto path = dir.file("missing.db");
  try {
    auto db = store::open_read_only(path);
    FAIL() << "opening a missing file read-only should throw";
  } catch (const sql::SqliteError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << "message: " << e.what();
  }
  EXPECT_FALSE(fs::exists(path)) << "open_read_only must not create " << path;
}

TEST(StoreOpen, ReadOnlyOfANonTopicflowDatabaseFails) {
  TempDir dir;
  const auto path = dir.file("other.db");
  { sql::Database(path).exec("CREATE TABLE something_else(x)"); }
  try {
    auto db = store::open_read_only(path);
    FAIL() << "a database without a topics table is not a topicflow database";
  } catch (const sql::SqliteError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << "message: " << e.what();
    EXPECT_NE(std::string(e.what()).find("topics"), std::string::npos) << "message: " << e.what();
  }
}

TEST(StoreOpen, ReadOnlyOfAFileThatIsNotADatabaseFails) {
  TempDir dir;
  const auto path = dir.file("notes.txt");
  {
    std::ofstream(path) << "these are not the pages you are looking for\n"
                        << std::string(4096, 'x');
  }
  try {
    auto db = store::open_read_only(path);
    FAIL() << "a text file is not a database";
  } catch (const sql::SqliteError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos)
        << "the reason names the file: " << e.what();
  }
}

TEST(StoreOpen, ReadOnlyReadsAClosedWalDatabase) {
  // `topicflow status` opens the sink's file after (or while) the sink runs.
  TempDir dir;
  const auto path = dir.file("status.db");
  {
    auto db = store::open_for_writing(path);
    insert(db, {"job", "k1", "completed", 1, std::nullopt, 1});
    insert(db, {"job", "k2", "failed", 3, "no luck", 2});
  }
  auto ro = store::open_read_only(path);
  const auto counts = store::read_counts(ro);
  ASSERT_EQ(counts.size(), 1U);
  EXPECT_EQ(counts[0].count(store::Status::completed), 1U);
  EXPECT_EQ(counts[0].count(store::Status::failed), 1U);
  EXPECT_THROW(ro.exec("DELETE FROM topics"), sql::SqliteError)
      << "the status connection cannot write";
}

TEST(StoreOpen, ReadOnlySeesAWritersCommitsWhileItRuns) {
  TempDir dir;
  const auto path = dir.file("live.db");
  auto writer = store::open_for_writing(path);
  insert(writer, {"job", "k1", "pending", 0, std::nullopt, 1});
  auto ro = store::open_read_only(path);
  EXPECT_EQ(store::read_counts(ro)[0].total(), 1U);
  {
    sql::Transaction tx(writer);
    insert(writer, {"job", "k2", "pending", 0, std::nullopt, 1});
    EXPECT_EQ(store::read_counts(ro)[0].total(), 1U)
        << "uncommitted rows are invisible, and reading is not blocked";
    tx.commit();
  }
  EXPECT_EQ(store::read_counts(ro)[0].total(), 2U) << "after the commit";
}

TEST(StoreOpen, ForWritingWaitsForAReaderOfANewFile) {
  // The sink starting while `topicflow status` (or a test polling counts) reads the still-empty
  // file: switching it to WAL needs an exclusive lock, so the open must wait, not fail.
  TempDir dir;
  const auto path = dir.file("new.db");
  { std::ofstream touch(path); }
  sql::Database reader(path, sql::OpenMode::read_only);
  reader.exec("BEGIN");
  reader.exec("SELECT count(*) FROM sqlite_master");  // holds a shared lock until COMMIT
  const auto start = std::chrono::steady_clock::now();
  std::thread release([&reader] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    reader.exec("COMMIT");
  });
  try {
    auto db = store::open_for_writing(path);
    const auto waited = std::chrono::steady_clock::now() - start;
    EXPECT_GE(waited, std::chrono::milliseconds(200)) << "it waited for the reader";
  } catch (const sql::SqliteError& e) {
    ADD_FAILURE() << "open_for_writing gave up while a reader held the file: " << e.what();
  }
  release.join();
}

TEST(StoreOpen, ForWritingInAMissingDirectoryNamesThePath) {
  TempDir dir;
  const auto path = dir.file("no/such/dir/topics.db");
  try {
    auto db = store::open_for_writing(path);
    FAIL() << "a missing directory should fail";
  } catch (const sql::SqliteError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << "message: " << e.what();
  }
}

TEST(StoreOpen, ForWritingANonDatabaseFileNamesThePath) {
  TempDir dir;
  const auto path = dir.file("garbage.db");
  { std::ofstream(path) << std::string(8192, 'g'); }
  try {
    auto db = store::open_for_writing(path);
    FAIL() << "a garbage file should fail";
  } catch (const sql::SqliteError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << "message: " << e.what();
    EXPECT_EQ(e.code() & 0xff, SQLITE_NOTADB) << "message: " << e.what();
  }
}
