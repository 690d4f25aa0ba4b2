#include <topicflow/sqlite.hpp>

#include <sqlite3.h>

#include <mutex>

namespace topicflow::sqlite {
namespace {
// SQLite's memory statistics (on by default) take a global mutex and update counters around
// every malloc and free, and Debian's libsqlite3 is built without lookaside, so every cursor,
// record and value of every statement goes through them: ~10 allocations per row write in the
// sink (callgrind). Nothing here reads sqlite3_memory_used(), so turn them off. Possible only
// before SQLite initializes; if the process already initialized it, this is a harmless no-op.
void configure_library() noexcept {
  static std::once_flag once;
  std::call_once(once, [] { (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
}
// SQLite binds NULL for a null pointer, but an empty std::string_view may have one: bind ''.
const char* non_null(std::string_view s) noexcept { return s.data() != nullptr ? s.data() : ""; }
}  // namespace

void throw_error(sqlite3* db, int code, std::string_view context) {
  const int primary = code & 0xff;
  std::string message(context);
  message += ": ";
  message += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(code);
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) throw BusyError(code, message);
  if (primary == SQLITE_FULL || primary == SQLITE_IOERR) throw UnavailableError(code, message);
  throw SqliteError(code, message);
}

void Database::Closer::operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }

Database::Database(const std::string& path, OpenMode mode) : path_(path) {
  configure_library();
  int flags = SQLITE_OPEN_NOMUTEX;
  switch (mode) {
    case OpenMode::read_write_create: flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE; break;
    case OpenMode::read_write: flags |= SQLITE_OPEN_READWRITE; break;
    case OpenMode::read_only: flags |= SQLITE_OPEN_READONLY; break;
  }
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  db_.reset(raw);
  if (rc != SQLITE_OK) {
    std::string reason = raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    throw SqliteError(rc, "cannot open database '" + path + "': " + reason);
  }
  sqlite3_extended_result_codes(raw, 1);
}

void Database::exec(std::string_view sql) {
  std::string owned(sql);
  char* err = nullptr;
  const int rc = sqlite3_exec(db_.get(), owned.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string message = err != nullptr ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    const int primary = rc & 0xff;
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) throw BusyError(rc, message);
    if (primary == SQLITE_FULL || primary == SQLITE_IOERR) {
      throw UnavailableError(rc, message + " (in: " + owned.substr(0, 80) + ")");
    }
    throw SqliteError(rc, message + " (in: " + owned.substr(0, 80) + ")");
  }
}

Statement Database::prepare(std::string_view sql) { return Statement(*this, sql); }

void Database::busy_timeout(int ms) { sqlite3_busy_timeout(db_.get(), ms); }

std::int64_t Database::changes() const noexcept { return sqlite3_changes64(db_.get()); }

std::int64_t Database::last_insert_rowid() const noexcept {
  return sqlite3_last_insert_rowid(db_.get());
}

void Statement::Finalizer::operator()(sqlite3_stmt* stmt) const noexcept { sqlite3_finalize(stmt); }

Statement::Statement(Database& db, std::string_view sql) : db_(db.handle()) {
  sqlite3_stmt* raw = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                    SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  stmt_.reset(raw);
  if (rc != SQLITE_OK) throw_error(db_, rc, "prepare '" + std::string(sql.substr(0, 60)) + "'");
}

Statement& Statement::bind(int index, std::int64_t value) {
  const int rc = sqlite3_bind_int64(stmt_.get(), index, value);
  if (rc != SQLITE_OK) throw_error(db_, rc, "bind");
  return *this;
}

Statement& Statement::bind(int index, std::string_view text) {
  const int rc = sqlite3_bind_text64(stmt_.get(), index, non_null(text), text.size(),
                                     SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK) throw_error(db_, rc, "bind");
  return *this;
}

Statement& Statement::bind_blob(int index, std::string_view bytes) {
  const int rc =
      sqlite3_bind_blob64(stmt_.get(), index, non_null(bytes), bytes.size(), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) throw_error(db_, rc, "bind");
  return *this;
}

Statement& Statement::bind_static(int index, std::string_view text) {
  const int rc = sqlite3_bind_text64(stmt_.get(), index, non_null(text), text.size(), SQLITE_STATIC,
                                     SQLITE_UTF8);
  if (rc != SQLITE_OK) throw_error(db_, rc, "bind");
  return *this;
}

Statement& Statement::bind_blob_static(int index, std::string_view bytes) {
  const int rc =
      sqlite3_bind_blob64(stmt_.get(), index, non_null(bytes), bytes.size(), SQLITE_STATIC);
  if (rc != SQLITE_OK) throw_error(db_, rc, "bind");
  return *this;
}

Statement& Statement::bind_null(int index) {
  const int rc = sqlite3_bind_null(stmt_.get(), index);
  if (rc != SQLITE_OK) throw_error(db_, rc, "bind");
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  const std::string sql = sqlite3_sql(stmt_.get()) != nullptr ? sqlite3_sql(stmt_.get()) : "";
  sqlite3_reset(stmt_.get());
  throw_error(db_, rc, "step '" + sql.substr(0, 60) + "'");
}

void Statement::reset() noexcept {
  sqlite3_reset(stmt_.get());
  sqlite3_clear_bindings(stmt_.get());
}

bool Statement::is_null(int column) const noexcept {
  return sqlite3_column_type(stmt_.get(), column) == SQLITE_NULL;
}

std::int64_t Statement::column_int(int column) const noexcept {
  return sqlite3_column_int64(stmt_.get(), column);
}

std::string_view Statement::column_text(int column) const noexcept {
  const auto* p = sqlite3_column_text(stmt_.get(), column);
  const int n = sqlite3_column_bytes(stmt_.get(), column);
  return p == nullptr
             ? std::string_view()
             : std::string_view(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
}

std::string_view Statement::column_blob(int column) const noexcept {
  const void* p = sqlite3_column_blob(stmt_.get(), column);
  const int n = sqlite3_column_bytes(stmt_.get(), column);
  return p == nullptr ? std::string_view()
                      : std::string_view(static_cast<const char*>(p), static_cast<std::size_t>(n));
}

Transaction::Transaction(Database& db) : db_(db) {
  db_.exec("BEGIN IMMEDIATE");
  open_ = true;
}

Transaction::~Transaction() {
  if (open_) sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void Transaction::commit() {
  db_.exec("COMMIT");
  open_ = false;
}

ReadTransaction::ReadTransaction(Database& db) : db_(db) { db_.exec("BEGIN"); }

ReadTransaction::~ReadTransaction() {
  sqlite3_exec(db_.handle(), "COMMIT", nullptr, nullptr, nullptr);
}

}  // namespace topicflow::sqlite
