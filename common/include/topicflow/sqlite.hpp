#pragma once
// RAII over the SQLite C API. Database and Statement are move-only owners with noexcept
// destructors; Transaction runs BEGIN IMMEDIATE in its constructor and rolls back in its
// destructor unless commit() succeeded. Errors throw SqliteError; SQLITE_BUSY and SQLITE_LOCKED
// throw BusyError, SQLITE_FULL and SQLITE_IOERR UnavailableError, so a caller can back off and
// retry without losing its work.
// Thread-safety: one Database per thread (SQLite's default serialized mode is not relied on).

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace topicflow::sqlite {

class SqliteError : public std::runtime_error {
 public:
  SqliteError(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
  [[nodiscard]] int code() const noexcept { return code_; }

 private:
  int code_;
};

class BusyError : public SqliteError {
 public:
  using SqliteError::SqliteError;
};

// SQLITE_FULL (disk full) and SQLITE_IOERR (an I/O error): the database cannot take writes for
// now, though the file is intact (SQLite rolls the transaction back). A writer that keeps what it
// was writing and retries later, as for BusyError, loses nothing.
class UnavailableError : public SqliteError {
 public:
  using SqliteError::SqliteError;
  [[nodiscard]] bool disk_full() const noexcept { return (code() & 0xff) == 13; }  // SQLITE_FULL
};

enum class OpenMode { read_write_create, read_write, read_only };

class Statement;

class Database {
 public:
  // Throws SqliteError with the path and SQLite's reason when the file cannot be opened.
  Database(const std::string& path, OpenMode mode = OpenMode::read_write_create);
  ~Database() = default;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  Database(Database&&) noexcept = default;
  Database& operator=(Database&&) noexcept = default;

  void exec(std::string_view sql);
  [[nodiscard]] Statement prepare(std::string_view sql);
  void busy_timeout(int ms);
  [[nodiscard]] std::int64_t changes() const noexcept;
  [[nodiscard]] std::int64_t last_insert_rowid() const noexcept;
  [[nodiscard]] sqlite3* handle() const noexcept { return db_.get(); }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  struct Closer {
    void operator()(sqlite3* db) const noexcept;
  };
  std::unique_ptr<sqlite3, Closer> db_;
  std::string path_;
};

class Statement {
 public:
  Statement(Database& db, std::string_view sql);
  ~Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement(Statement&&) noexcept = default;
  Statement& operator=(Statement&&) noexcept = default;

  // Binds are 1-based like SQLite's. Text and blobs are copied (SQLITE_TRANSIENT) unless the
  // caller keeps them alive until reset(): bind_*_static.
  Statement& bind(int index, std::int64_t value);
  Statement& bind(int index, std::string_view text);
  Statement& bind_blob(int index, std::string_view bytes);
  Statement& bind_null(int index);
  Statement& bind_static(int index, std::string_view text);
  Statement& bind_blob_static(int index, std::string_view bytes);

  // Steps once: true while a row is available, false when done. Throws BusyError / SqliteError.
  bool step();
  // Resets and clears bindings so the statement can be reused.
  void reset() noexcept;

  [[nodiscard]] bool is_null(int column) const noexcept;
  [[nodiscard]] std::int64_t column_int(int column) const noexcept;
  [[nodiscard]] std::string_view column_text(int column) const noexcept;
  [[nodiscard]] std::string_view column_blob(int column) const noexcept;

 private:
  struct Finalizer {
    void operator()(sqlite3_stmt* stmt) const noexcept;
  };
  std::unique_ptr<sqlite3_stmt, Finalizer> stmt_;
  sqlite3* db_ = nullptr;
};

// BEGIN IMMEDIATE on construction (throws BusyError when another connection holds the write
// lock); ROLLBACK on destruction unless committed.
class Transaction {
 public:
  explicit Transaction(Database& db);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  // Throws BusyError if the commit could not take the lock; the transaction stays open and the
  // caller may retry commit() or let the destructor roll back.
  void commit();

 private:
  Database& db_;
  bool open_ = false;
};

// A read transaction (BEGIN DEFERRED ... COMMIT): the reads inside see one snapshot and take
// the WAL read lock once instead of once per statement. Ends (COMMIT, errors ignored) on
// destruction.
class ReadTransaction {
 public:
  explicit ReadTransaction(Database& db);
  ~ReadTransaction();
  ReadTransaction(const ReadTransaction&) = delete;
  ReadTransaction& operator=(const ReadTransaction&) = delete;

 private:
  Database& db_;
};

// Throws BusyError for SQLITE_BUSY / SQLITE_LOCKED, SqliteError otherwise.
[[noreturn]] void throw_error(sqlite3* db, int code, std::string_view context);

}  // namespace topicflow::sqlite
