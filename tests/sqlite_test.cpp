// Unit tests of the SQLite RAII layer (common/src/sqlite.cpp): ownership properties, statement
// reuse, transactions, and the BusyError contract the sink's backoff depends on.

#include <topicflow/sqlite.hpp>

#include "support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <unistd.h>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <type_traits>

namespace sql = topicflow::sqlite;
namespace fs = std::filesystem;

// The ownership rules of the wrappers, pinned at compile time (cppzmq habit).
static_assert(!std::is_copy_constructible_v<sql::Database>);
static_assert(!std::is_copy_assignable_v<sql::Database>);
static_assert(std::is_nothrow_move_constructible_v<sql::Database>);
static_assert(std::is_nothrow_move_assignable_v<sql::Database>);
static_assert(std::is_nothrow_destructible_v<sql::Database>);
static_assert(!std::is_copy_constructible_v<sql::Statement>);
static_assert(!std::is_copy_assignable_v<sql::Statement>);
static_assert(std::is_nothrow_move_constructible_v<sql::Statement>);
static_assert(std::is_nothrow_move_assignable_v<sql::Statement>);
static_assert(std::is_nothrow_destructible_v<sql::Statement>);
static_assert(!std::is_copy_constructible_v<sql::Transaction>);
static_assert(!std::is_copy_assignable_v<sql::Transaction>);
static_assert(std::is_nothrow_destructible_v<sql::Transaction>);
static_assert(std::is_base_of_v<sql::SqliteError, sql::BusyError>);
static_assert(std::is_base_of_v<std::runtime_error, sql::SqliteError>);

namespace {

using TempDir = topicflow::testing::TempDir;

std::int64_t count_rows(sql::Database& db, const std::string& table = "t") {
  auto stmt = db.prepare("SELECT count(*) FROM " + table);
  EXPECT_TRUE(stmt.step()) << "count(*) returns a row";
  return stmt.column_int(0);
}

// A WAL database with one table and busy_timeout 0, so lock conflicts fail at once.
sql::Database open_wal(const std::string& path) {
  sql::Database db(path);
  db.busy_timeout(0);
  db.exec("PRAGMA journal_mode=WAL");
  db.exec("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, name TEXT, data BLOB)");
  return db;
}

}  // namespace

TEST(SqliteDatabase, OpensInMemoryAndExecutes) {
  sql::Database db(":memory:");
  EXPECT_NE(db.handle(), nullptr);
  EXPECT_EQ(db.path(), ":memory:");
  db.exec(
      "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO t(name) VALUES ('a'), ('b')");
  EXPECT_EQ(db.changes(), 2) << "the multi-row insert changed 2 rows";
  EXPECT_EQ(count_rows(db), 2);
}

TEST(SqliteDatabase, OpenFailureNamesThePath) {
  const std::string path = "/proc/nope/x.db";
  try {
    sql::Database db(path);
    FAIL() << "opening " << path << " should throw";
  } catch (const sql::SqliteError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << "message: " << e.what();
    EXPECT_EQ(e.code() & 0xff, SQLITE_CANTOPEN) << "message: " << e.what();
  }
}

TEST(SqliteDatabase, ReadWriteWithoutCreateDoesNotCreate) {
  TempDir dir;
  const auto path = dir.file("missing.db");
  EXPECT_THROW(sql::Database(path, sql::OpenMode::read_write), sql::SqliteError) << path;
  EXPECT_THROW(sql::Database(path, sql::OpenMode::read_only), sql::SqliteError) << path;
  EXPECT_FALSE(fs::exists(path)) << "a non-creating open must not create " << path;
}

TEST(SqliteDatabase, ReadOnlyRefusesWrites) {
  TempDir dir;
  const auto path = dir.file("ro.db");
  { open_wal(path).exec("INSERT INTO t(name) VALUES ('x')"); }
  sql::Database ro(path, sql::OpenMode::read_only);
  EXPECT_EQ(count_rows(ro), 1) << "a read-only connection reads";
  try {
    ro.exec("INSERT INTO t(name) VALUES ('y')");
    FAIL() << "a read-only connection must not write";
  } catch (const sql::SqliteError& e) {
    EXPECT_EQ(e.code() & 0xff, SQLITE_READONLY) << "message: " << e.what();
  }
}

TEST(SqliteDatabase, ExecErrorCarriesTheStatement) {
  sql::Database db(":memory:");
  try {
    db.exec("SELEKT 1");
    FAIL() << "a syntax error should throw";
  } catch (const sql::BusyError& e) {
    FAIL() << "a syntax error is not busy: " << e.what();
  } catch (const sql::SqliteError& e) {
    EXPECT_NE(std::string(e.what()).find("SELEKT"), std::string::npos) << "message: " << e.what();
    EXPECT_EQ(e.code() & 0xff, SQLITE_ERROR) << "message: " << e.what();
  }
}

TEST(SqliteDatabase, MoveTransfersOwnership) {
  sql::Database a(":memory:");
  a.exec("CREATE TABLE t(id INTEGER)");
  sqlite3* handle = a.handle();
  sql::Database b(std::move(a));
  EXPECT_EQ(b.handle(), handle) << "the handle moved";
  // Inspecting the moved-from object is the point of this test.
  // NOLINTNEXTLINE(bugprone-use-after-move,clang-analyzer-cplusplus.Move)
  EXPECT_EQ(a.handle(), nullptr) << "the moved-from database owns nothing";
  b.exec("INSERT INTO t VALUES (1)");
  sql::Database c(":memory:");
  c = std::move(b);
  EXPECT_EQ(c.handle(), handle) << "move assignment took the handle";
  EXPECT_EQ(count_rows(c), 1) << "the data came along";
}

TEST(SqliteStatement, PrepareErrorThrowsWithTheSql) {
  sql::Database db(":memory:");
  try {
    auto stmt = db.prepare("SELECT * FROM no_such_table");
    FAIL() << "preparing against a missing table should throw";
  } catch (const sql::SqliteError& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_table"), std::string::npos)
        << "message: " << e.what();
  }
}

TEST(SqliteStatement, BindStepResetReuse) {
  sql::Database db(":memory:");
  db.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, data BLOB)");
  auto insert = db.prepare("INSERT INTO t(id, name, data) VALUES (?1, ?2, ?3)");
  const std::string blob("\x00\x01\xff", 3);
  for (std::int64_t id = 1; id <= 100; ++id) {
    insert.bind(1, id).bind(2, "name-" + std::to_string(id)).bind_blob(3, blob);
    EXPECT_FALSE(insert.step()) << "an INSERT yields no row, id " << id;
    insert.reset();
  }
  EXPECT_EQ(count_rows(db), 100) << "one prepared statement inserted 100 rows";

  auto select = db.prepare("SELECT id, name, data FROM t WHERE id = ?1");
  for (std::int64_t id : {1, 50, 100}) {
    select.bind(1, id);
    ASSERT_TRUE(select.step()) << "row " << id;
    EXPECT_EQ(select.column_int(0), id);
    EXPECT_EQ(select.column_text(1), "name-" + std::to_string(id));
    EXPECT_EQ(select.column_blob(2), blob) << "blob with NUL and 0xff bytes, row " << id;
    EXPECT_FALSE(select.step()) << "exactly one row for id " << id;
    select.reset();
  }
  select.bind(1, std::int64_t{999});
  EXPECT_FALSE(select.step()) << "no row 999";
}

TEST(SqliteStatement, ResetClearsBindings) {
  sql::Database db(":memory:");
  auto stmt = db.prepare("SELECT ?1");
  stmt.bind(1, std::int64_t{42});
  ASSERT_TRUE(stmt.step());
  EXPECT_EQ(stmt.column_int(0), 42);
  stmt.reset();
  ASSERT_TRUE(stmt.step());
  EXPECT_TRUE(stmt.is_null(0)) << "reset() clears bindings, so ?1 is NULL again";
}

TEST(SqliteStatement, NullsStaticBindsAndEmptyValues) {
  sql::Database db(":memory:");
  auto stmt = db.prepare("SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7");
  const std::string text = "kept alive until reset";
  const std::string bytes("\x00\x00", 2);
  stmt.bind_null(1)
      .bind_static(2, text)
      .bind_blob_static(3, bytes)
      .bind(4, std::string_view())
      .bind_blob(5, "");
  stmt.bind_static(6, std::string_view()).bind_blob_static(7, std::string_view());
  ASSERT_TRUE(stmt.step());
  EXPECT_TRUE(stmt.is_null(0)) << "bind_null";
  EXPECT_EQ(stmt.column_text(0), "") << "a NULL column reads as empty text";
  EXPECT_EQ(stmt.column_blob(0), "") << "a NULL column reads as an empty blob";
  EXPECT_EQ(stmt.column_text(1), text) << "bind_static";
  EXPECT_EQ(stmt.column_blob(2), bytes) << "bind_blob_static keeps the NULs";
  EXPECT_FALSE(stmt.is_null(3)) << "an empty text (even a default string_view) is not NULL";
  EXPECT_EQ(stmt.column_text(3), "");
  EXPECT_FALSE(stmt.is_null(4)) << "an empty blob is not NULL";
  EXPECT_EQ(stmt.column_blob(4), "") << "an empty blob";
  EXPECT_FALSE(stmt.is_null(5)) << "an empty static text is not NULL";
  EXPECT_FALSE(stmt.is_null(6)) << "an empty static blob is not NULL";
  stmt.reset();
}

TEST(SqliteStatement, BindOutOfRangeThrows) {
  sql::Database db(":memory:");
  auto stmt = db.prepare("SELECT ?1");
  EXPECT_THROW(stmt.bind(2, std::int64_t{1}), sql::SqliteError)
      << "index 2 of a one-parameter statement";
  EXPECT_THROW(stmt.bind(0, "x"), sql::SqliteError) << "index 0 (binds are 1-based)";
}

TEST(SqliteStatement, StepErrorThrowsAndStatementStaysUsable) {
  sql::Database db(":memory:");
  db.exec("CREATE TABLE t(id INTEGER PRIMARY KEY)");
  auto insert = db.prepare("INSERT INTO t(id) VALUES (?1)");
  insert.bind(1, std::int64_t{1});
  EXPECT_FALSE(insert.step());
  insert.reset();
  insert.bind(1, std::int64_t{1});
  try {
    (void)insert.step();
    FAIL() << "a duplicate primary key should throw";
  } catch (const sql::SqliteError& e) {
    EXPECT_EQ(e.code() & 0xff, SQLITE_CONSTRAINT) << "message: " << e.what();
  }
  insert.reset();
  insert.bind(1, std::int64_t{2});
  EXPECT_FALSE(insert.step()) << "the statement is reusable after a failed step";
  EXPECT_EQ(count_rows(db), 2);
}

TEST(SqliteStatement, MovedStatementStillWorks) {
  sql::Database db(":memory:");
  auto a = db.prepare("SELECT 7");
  sql::Statement b(std::move(a));
  ASSERT_TRUE(b.step());
  EXPECT_EQ(b.column_int(0), 7);
}

TEST(SqliteTransaction, RollsBackWhenNotCommitted) {
  TempDir dir;
  auto db = open_wal(dir.file("tx.db"));
  {
    sql::Transaction tx(db);
    db.exec("INSERT INTO t(name) VALUES ('gone')");
    EXPECT_EQ(count_rows(db), 1) << "visible inside the transaction";
  }
  EXPECT_EQ(count_rows(db), 0) << "the destructor rolled back";
  {
    sql::Transaction tx(db);
    db.exec("INSERT INTO t(name) VALUES ('gone too')");
    try {
      throw std::runtime_error("work failed");
    } catch (const std::runtime_error&) {
      // The exception unwinds the transaction: nothing is written.
    }
  }
  EXPECT_EQ(count_rows(db), 0) << "still nothing after a second rolled-back transaction";
}

TEST(SqliteTransaction, CommitPersistsAcrossConnections) {
  TempDir dir;
  const auto path = dir.file("commit.db");
  {
    auto db = open_wal(path);
    sql::Transaction tx(db);
    auto insert = db.prepare("INSERT INTO t(name) VALUES (?1)");
    for (int i = 0; i < 10; ++i) {
      insert.bind(1, "row " + std::to_string(i));
      (void)insert.step();
      insert.reset();
    }
    tx.commit();
  }
  sql::Database reopened(path, sql::OpenMode::read_only);
  EXPECT_EQ(count_rows(reopened), 10) << "committed rows survive closing the writer";
}

TEST(SqliteTransaction, NestedBeginThrowsAndOuterStillWorks) {
  sql::Database db(":memory:");
  db.exec("CREATE TABLE t(id INTEGER)");
  sql::Transaction outer(db);
  EXPECT_THROW(sql::Transaction inner(db), sql::SqliteError) << "BEGIN inside a transaction";
  db.exec("INSERT INTO t VALUES (1)");
  outer.commit();
  EXPECT_EQ(count_rows(db), 1) << "the failed inner BEGIN did not roll back the outer one";
}

TEST(SqliteBusy, SecondWriterGetsBusyError) {
  TempDir dir;
  const auto path = dir.file("busy.db");
  auto holder = open_wal(path);
  auto other = open_wal(path);
  other.busy_timeout(0);

  sql::Transaction lock(holder);  // BEGIN IMMEDIATE: the write lock
  holder.exec("INSERT INTO t(name) VALUES ('holder')");
  try {
    sql::Transaction tx(other);
    FAIL() << "BEGIN IMMEDIATE must fail while another connection holds the write lock";
  } catch (const sql::BusyError& e) {
    EXPECT_EQ(e.code() & 0xff, SQLITE_BUSY) << "message: " << e.what();
  }

  auto insert = other.prepare("INSERT INTO t(name) VALUES (?1)");
  insert.bind(1, "other");
  EXPECT_THROW((void)insert.step(), sql::BusyError) << "an autocommit write is busy too";
  EXPECT_EQ(count_rows(other), 0) << "readers still read (WAL): the holder has not committed";

  lock.commit();
  // The same statement, reused after the BusyError, now succeeds: the caller kept its work.
  insert.reset();
  insert.bind(1, "other");
  EXPECT_FALSE(insert.step()) << "retrying after the lock was released works";
  sql::Transaction now_free(other);
  now_free.commit();
  EXPECT_EQ(count_rows(holder), 2) << "both rows are there";
}

TEST(SqliteBusy, BusyTimeoutWaitsThenThrows) {
  TempDir dir;
  const auto path = dir.file("timeout.db");
  auto holder = open_wal(path);
  auto other = open_wal(path);
  other.busy_timeout(150);
  sql::Transaction lock(holder);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(sql::Transaction tx(other), sql::BusyError);
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - start)
                          .count();
  EXPECT_GE(waited, 100) << "busy_timeout(150) should wait before giving up, waited " << waited
                         << " ms";
}

TEST(SqliteBusy, CommitBusyKeepsTheTransactionOpen) {
  // In rollback-journal mode a COMMIT needs every reader gone; while one reads, COMMIT is busy.
  // The contract: BusyError, the transaction stays open, and commit() may be retried.
  TempDir dir;
  const auto path = dir.file("journal.db");
  sql::Database writer(path);
  writer.exec("PRAGMA journal_mode=DELETE");
  writer.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT)");
  writer.exec("INSERT INTO t(name) VALUES ('first')");
  sql::Database reader(path);

  sql::Transaction tx(writer);
  writer.exec("INSERT INTO t(name) VALUES ('second')");
  {
    auto read = reader.prepare("SELECT name FROM t");
    ASSERT_TRUE(read.step()) << "the reader holds a shared lock while its statement is active";
    EXPECT_THROW(tx.commit(), sql::BusyError) << "COMMIT must wait for the reader";
    read.reset();  // the reader lets go
  }
  ASSERT_NO_THROW(tx.commit()) << "retrying the commit after the reader finished";
  EXPECT_EQ(count_rows(reader), 2) << "both rows committed";
}

TEST(SqliteErrors, ThrowErrorMapsBusyAndLocked) {
  EXPECT_THROW(sql::throw_error(nullptr, SQLITE_BUSY, "ctx"), sql::BusyError);
  EXPECT_THROW(sql::throw_error(nullptr, SQLITE_LOCKED, "ctx"), sql::BusyError);
  EXPECT_THROW(sql::throw_error(nullptr, SQLITE_BUSY_SNAPSHOT, "ctx"), sql::BusyError)
      << "extended busy code";
  try {
    sql::throw_error(nullptr, SQLITE_CORRUPT, "reading page 7");
  } catch (const sql::BusyError& e) {
    FAIL() << "corruption is not busy: " << e.what();
  } catch (const sql::SqliteError& e) {
    EXPECT_EQ(e.code(), SQLITE_CORRUPT);
    EXPECT_NE(std::string(e.what()).find("reading page 7"), std::string::npos)
        << "message: " << e.what();
  }
}
