#pragma once
// Helpers for tests that start the real binaries as separate processes (e2e, fault tests): a
// private temp dir with ipc:// endpoints and a database path, role processes started from the
// build's bin dir with their stderr in <dir>/<name>.log (kept when the test fails), commands run
// to completion with their output captured, and direct SQLite reads of the state, also while
// the sink writes (polling with a bound: wait_for_counts).
//
// Needs TOPICFLOW_BIN_DIR (compile definition: "${CMAKE_BINARY_DIR}/bin"). Not thread-safe.

#include <topicflow/clock.hpp>
#include <topicflow/process.hpp>

#include "support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <array>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <list>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#ifndef TOPICFLOW_BIN_DIR
#error "define TOPICFLOW_BIN_DIR to the directory of the topicflow binaries"
#endif

namespace topicflow::testing {

inline std::string bin(const std::string& name) {
  return std::string(TOPICFLOW_BIN_DIR) + "/" + name;
}

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// What a finished command left behind.
struct CommandResult {
  ExitStatus status;
  bool timed_out = false;
  std::string out;
  std::string err;
  [[nodiscard]] std::string describe() const {
    return (timed_out ? std::string("TIMED OUT, ") : std::string()) + status.describe() +
           "\n--- stdout:\n" + out + "--- stderr:\n" + err;
  }
};

// A row of the topics table, as the tests compare it.
struct Row {
  std::string status;
  std::int64_t attempts = 0;
  std::optional<std::string> error;
  std::int64_t updated_at = 0;
  bool operator==(const Row&) const = default;
};

// Rows per status of one job.
struct StatusCounts {
  std::map<std::string, std::int64_t> by_status;
  [[nodiscard]] std::int64_t operator[](const std::string& status) const {
    const auto it = by_status.find(status);
    return it == by_status.end() ? 0 : it->second;
  }
  [[nodiscard]] std::int64_t total() const {
    std::int64_t n = 0;
    for (const auto& [status, count] : by_status) n += count;
    return n;
  }
  [[nodiscard]] bool all_completed(std::int64_t n) const {
    return total() == n && (*this)["completed"] == n;
  }
  [[nodiscard]] bool all_terminal(std::int64_t n) const {
    return total() == n && (*this)["completed"] + (*this)["failed"] == n;
  }
  [[nodiscard]] std::string describe() const {
    return "pending=" + std::to_string((*this)["pending"]) +
           " running=" + std::to_string((*this)["running"]) +
           " completed=" + std::to_string((*this)["completed"]) +
           " failed=" + std::to_string((*this)["failed"]);
  }
};

// Read-only access to a database file, straight through the SQLite C API.
class DbReader {
 public:
  explicit DbReader(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      std::string why = db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw std::runtime_error("cannot open " + path + ": " + why);
    }
    sqlite3_busy_timeout(db_, 5000);
  }
  ~DbReader() { sqlite3_close(db_); }
  DbReader(const DbReader&) = delete;
  DbReader& operator=(const DbReader&) = delete;

  // The first column of the first row as an integer (0 if no row).
  std::int64_t scalar(const std::string& sql) {
    Stmt stmt(db_, sql);
    return sqlite3_step(stmt.s) == SQLITE_ROW ? sqlite3_column_int64(stmt.s, 0) : 0;
  }

  // The first column of every row, as text.
  std::vector<std::string> column(const std::string& sql) {
    Stmt stmt(db_, sql);
    std::vector<std::string> out;
    while (sqlite3_step(stmt.s) == SQLITE_ROW) out.push_back(text(stmt.s, 0));
    return out;
  }

  std::map<std::string, std::int64_t> counts(const std::string& job) {
    Stmt stmt(db_, "SELECT status, count(*) FROM topics WHERE job = ?1 GROUP BY status");
    sqlite3_bind_text(stmt.s, 1, job.c_str(), -1, SQLITE_TRANSIENT);
    std::map<std::string, std::int64_t> out;
    while (sqlite3_step(stmt.s) == SQLITE_ROW)
      out[text(stmt.s, 0)] = sqlite3_column_int64(stmt.s, 1);
    return out;
  }

  // key -> result (empty when NULL), for the job's completed rows.
  std::map<std::string, std::string> results(const std::string& job) {
    Stmt stmt(db_, "SELECT key, result FROM topics WHERE job = ?1 AND status = 'completed'");
    sqlite3_bind_text(stmt.s, 1, job.c_str(), -1, SQLITE_TRANSIENT);
    std::map<std::string, std::string> out;
    while (sqlite3_step(stmt.s) == SQLITE_ROW) {
      const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt.s, 1));
      out[text(stmt.s, 0)] =
          p != nullptr ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt.s, 1)))
                       : std::string();
    }
    return out;
  }

  std::map<std::string, Row> rows(const std::string& job) {
    Stmt stmt(db_, "SELECT key, status, attempts, error, updated_at FROM topics WHERE job = ?1");
    sqlite3_bind_text(stmt.s, 1, job.c_str(), -1, SQLITE_TRANSIENT);
    std::map<std::string, Row> out;
    while (sqlite3_step(stmt.s) == SQLITE_ROW) {
      Row row;
      row.status = text(stmt.s, 1);
      row.attempts = sqlite3_column_int64(stmt.s, 2);
      if (sqlite3_column_type(stmt.s, 3) != SQLITE_NULL) row.error = text(stmt.s, 3);
      row.updated_at = sqlite3_column_int64(stmt.s, 4);
      out[text(stmt.s, 0)] = row;
    }
    return out;
  }

 private:
  struct Stmt {
    sqlite3_stmt* s = nullptr;
    Stmt(sqlite3* db, const std::string& sql) {
      if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
        throw std::runtime_error("prepare '" + sql + "': " + sqlite3_errmsg(db));
      }
    }
    ~Stmt() { sqlite3_finalize(s); }
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;
  };
  static std::string text(sqlite3_stmt* s, int column) {
    const auto* p = sqlite3_column_text(s, column);
    return p != nullptr ? std::string(reinterpret_cast<const char*>(p),
                                      static_cast<std::size_t>(sqlite3_column_bytes(s, column)))
                        : std::string();
  }
  sqlite3* db_ = nullptr;
};

// Exactly `n` rows in `job`, all completed (nothing pending, running or failed).
inline ::testing::AssertionResult all_completed(DbReader& db, const std::string& job,
                                                std::int64_t n) {
  const StatusCounts counts{db.counts(job)};
  if (counts.all_completed(n)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected " << n << " rows of job " << job
                                       << ", all completed; got " << counts.describe();
}

// A private system: temp dir, four ipc:// endpoints, a database path, and the processes started.
class System {
 public:
  // The temp dir is /tmp/topicflow-<label>-XXXXXX.
  explicit System(const std::string& label = "e2e")
      : tmp_(label), dir_(tmp_.path()), db_(tmp_.file("topicflow.db")) {
    tmp_.keep_on_failure();
  }
  ~System() {
    for (auto& [name, process] : roles_) process.stop(SIGKILL, std::chrono::milliseconds(0));
  }
  System(const System&) = delete;
  System& operator=(const System&) = delete;

  [[nodiscard]] const std::filesystem::path& dir() const noexcept { return dir_; }
  [[nodiscard]] const std::string& db() const noexcept { return db_; }
  [[nodiscard]] std::string endpoint(const std::string& name) const {
    return "ipc://" + (dir_ / name).string();
  }

  // --frontend ... --events ... for a role of this system.
  [[nodiscard]] std::vector<std::string> endpoint_args() const {
    return {"--frontend", endpoint("frontend"), "--backend", endpoint("backend"),
            "--sink",     endpoint("sink"),     "--events",  endpoint("events")};
  }

  // Starts `binary` (e.g. "topicflow-sink", or a path with a '/') with the endpoints,
  // --log-level, and `args`; stderr and stdout go to <dir>/<name>.log.
  ChildProcess& start(const std::string& name, const std::string& binary,
                      std::vector<std::string> args, const std::string& log_level = "info") {
    std::vector<std::string> argv{binary.find('/') != std::string::npos ? binary : bin(binary)};
    for (auto& a : endpoint_args()) argv.push_back(a);
    argv.insert(argv.end(), {"--log-level", log_level});
    for (auto& a : args) argv.push_back(std::move(a));
    SpawnOptions options;
    options.stdout_path = (dir_ / (name + ".log")).string();
    options.stderr_path = options.stdout_path;
    options.stdin_null = true;
    options.die_with_parent = true;
    roles_.emplace_back(name, ChildProcess(argv, options));
    return roles_.back().second;
  }

  // sink (on db()), broker, and `workers` workers with `worker_args`.
  void start_all(int workers, std::vector<std::string> sink_args = {},
                 const std::vector<std::string>& worker_args = {}) {
    sink_args.insert(sink_args.begin(), {"--db", db_});
    start("sink", "topicflow-sink", sink_args);
    start("broker", "topicflow-broker", {});
    start_workers(workers, worker_args);
  }

  // The role started last under `name` (a restarted broker replaces the killed one).
  ChildProcess& role(const std::string& name) {
    for (auto it = roles_.rbegin(); it != roles_.rend(); ++it) {
      if (it->first == name) return it->second;
    }
    throw std::out_of_range("no role " + name);
  }

  // One role each, started again after a kill by calling it again.
  ChildProcess& start_broker(std::vector<std::string> args = {}) {
    return start("broker", "topicflow-broker", std::move(args));
  }
  ChildProcess& start_sink(std::vector<std::string> args = {}) {
    args.insert(args.begin(), {"--db", db_});
    return start("sink", "topicflow-sink", std::move(args));
  }
  // `n` more workers, named on from the last: worker1, worker2, ...
  void start_workers(int n, const std::vector<std::string>& args) {
    for (int i = 0; i < n; ++i) {
      start("worker" + std::to_string(++workers_), "topicflow-worker", args);
    }
  }
  // A producer submitting `file` (producer1, producer2, ...).
  ChildProcess& start_producer(const std::string& file, std::vector<std::string> args = {}) {
    args.push_back(file);
    return start("producer" + std::to_string(++producers_), "topicflow-producer", std::move(args));
  }

  // Rows per status of `job` now; empty while the database does not exist yet.
  [[nodiscard]] StatusCounts counts(const std::string& job = "default") const {
    try {
      return StatusCounts{DbReader(db_).counts(job)};
    } catch (const std::exception&) {
      return {};
    }
  }
  // Polls counts(job) every 50 ms until `pred` holds; false when `timeout` passes first.
  bool wait_for_counts(const std::function<bool(const StatusCounts&)>& pred,
                       std::chrono::milliseconds timeout,
                       const std::string& job = "default") const {
    const auto deadline = steady_ms() + timeout.count();
    while (steady_ms() < deadline) {
      if (pred(counts(job))) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return pred(counts(job));
  }

  // SIGTERM to every role in the order they are named, each awaited (the sink last commits).
  void stop(const std::vector<std::string>& names,
            std::chrono::milliseconds grace = std::chrono::seconds(15)) {
    for (const auto& name : names) {
      auto status = role(name).stop(SIGTERM, grace);
      EXPECT_FALSE(status.signaled() && status.signal == SIGKILL)
          << name << " needed SIGKILL to stop; its log:\n"
          << log(name);
    }
  }
  // Workers first, then the broker, then the sink.
  void stop_all() {
    std::vector<std::string> order;
    for (auto& [name, p] : roles_) {
      if (name.rfind("worker", 0) == 0) order.push_back(name);
    }
    for (auto& [name, p] : roles_) {
      if (name != "sink" && name.rfind("worker", 0) != 0) order.push_back(name);
    }
    for (auto& [name, p] : roles_) {
      if (name == "sink") order.push_back(name);
    }
    stop(order);
  }

  [[nodiscard]] std::string log(const std::string& name) const {
    return read_text(dir_ / (name + ".log"));
  }

  // Runs a command to completion (killing it after `timeout`), capturing stdout and stderr.
  CommandResult run(const std::vector<std::string>& argv,
                    std::chrono::milliseconds timeout = std::chrono::seconds(120),
                    const std::vector<std::pair<std::string, std::string>>& env = {}) {
    const auto n = std::to_string(++commands_);
    const auto out = dir_ / ("cmd" + n + ".out");
    const auto err = dir_ / ("cmd" + n + ".err");
    SpawnOptions options;
    options.stdout_path = out.string();
    options.stderr_path = err.string();
    options.stdin_null = true;
    options.die_with_parent = true;
    options.new_process_group = true;
    options.env = env;
    CommandResult result;
    ChildProcess child(argv, options);
    if (auto status = child.wait_for(timeout)) {
      result.status = *status;
    } else {
      result.timed_out = true;
      result.status = child.stop(SIGTERM, std::chrono::seconds(10));
    }
    result.out = read_text(out);
    result.err = read_text(err);
    return result;
  }

  // Writes `text` to <dir>/<name> and returns its path.
  std::string write_file(const std::string& name, const std::string& text) {
    return tmp_.write(name, text);
  }
  // <dir>/<name> with `n` topics, one per line: "topic 0" ... "topic n-1".
  std::string write_topics(const std::string& name, int n) {
    std::string text;
    for (int i = 0; i < n; ++i) text += "topic " + std::to_string(i) + "\n";
    return write_file(name, text);
  }

 private:
  TempDir tmp_;
  std::filesystem::path dir_;
  std::string db_;
  std::list<std::pair<std::string, ChildProcess>> roles_;  // stable references
  int commands_ = 0;
  int workers_ = 0;
  int producers_ = 0;
};

}  // namespace topicflow::testing
