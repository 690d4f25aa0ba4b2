// topicflow-direct-worker: the design topicflow replaces, reproduced faithfully for
// bench/contention. Every worker PROCESS opens the SQLite file itself and writes each status
// change of each topic in its OWN transaction, with the retry loop such services carry:
// 5 retries, backoff 0.1 s doubling, no jitter, over a small busy_timeout. An update that still
// fails is counted as "gave up" and left as is: that is how updates get lost and rows stuck.
//
// Same table and settings as topicflow (store::apply_schema: WAL, synchronous=NORMAL), same
// handler (sleep:MIN-MAX uniform), same statements per status change as a per-row service:
//   running:   UPDATE topics SET status='running', attempts=attempts+1, ... WHERE job=? AND key=?
//   completed: UPDATE topics SET status='completed', result=?, ...       WHERE job=? AND key=?
// each inside BEGIN IMMEDIATE ... COMMIT.
//
// Claiming (--claim):
//   shard (default) worker I of N takes the job's rows I, I+N, I+2N... (in key order), the
//                   way a parent process hands each pool worker its slice of the list. Claims
//                   cost nothing, so what is measured is the status writes alone.
//   queue           each worker claims the next pending row itself: one
//                   UPDATE ... WHERE key = (SELECT key ... status='pending' LIMIT 1) RETURNING
//                   that is also the `running` write. A claim that gives up is retried later.
//
// Modes:
//   topicflow-direct-worker --db F --seed TOPICS.txt       registers every line as `pending`
//   topicflow-direct-worker --db F --index I --count N     one worker; prints one JSON line
//
// Writes nothing but its counters to stdout; errors to stderr. Exit 0 when it ran to the end
// (gave-up updates are results, not failures), 1 on a setup error, 2 on bad flags.

#include <topicflow/clock.hpp>
#include <topicflow/config.hpp>
#include <topicflow/shutdown.hpp>
#include <topicflow/sqlite.hpp>
#include <topicflow/store.hpp>

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace topicflow;

struct Config {
  std::string db = "contention.db";
  std::string job = "default";
  std::string seed;  // a topics file: register and exit
  int index = 0;
  int count = 1;
  std::string claim = "shard";
  std::string handler = "sleep:20-100";
  int busy_timeout_ms = 5;
  int retries = 5;
  int backoff_ms = 100;
  std::int64_t start_at_ms = 0;        // wall clock; every worker starts its first write then
  int deadline_ms = 300000;            // stop taking topics after this long (bounds the run)
  std::string synchronous = "normal";  // as store::apply_schema; `full` fsyncs every commit
};

struct Counters {
  std::uint64_t topics = 0;             // rows this worker was responsible for / claimed
  std::uint64_t handled = 0;            // handler runs
  std::uint64_t writes_ok = 0;          // status changes committed
  std::uint64_t completed_written = 0;  // of which `completed`
  std::uint64_t busy_errors = 0;        // SQLITE_BUSY/LOCKED seen ("database is locked")
  std::uint64_t retries = 0;            // attempts after the first
  std::uint64_t gave_up = 0;            // updates abandoned after the last retry
  std::uint64_t gave_up_running = 0;
  std::uint64_t gave_up_completed = 0;
  std::uint64_t other_errors = 0;  // any other SQLite error (the update is lost too)
  std::int64_t write_us_max = 0;   // longest single status write, retries included
  bool deadline_hit = false;
  bool interrupted = false;
};

struct Handler {
  int min_ms = 0;
  int max_ms = 0;
};

int parse_int(std::string_view text, const char* what) {
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0) {
    throw CLI::ValidationError(std::string("bad ") + what + ": '" + std::string(text) + "'");
  }
  return value;
}

// noop | sleep:MIN-MAX (the handlers a status-write benchmark needs).
Handler parse_handler(const std::string& spec) {
  if (spec == "noop") return {};
  constexpr std::string_view prefix = "sleep:";
  if (spec.rfind(prefix, 0) == 0) {
    const std::string_view range = std::string_view(spec).substr(prefix.size());
    const auto dash = range.find('-');
    if (dash == std::string_view::npos) {
      const int ms = parse_int(range, "--handler");
      return {ms, ms};
    }
    Handler h{parse_int(range.substr(0, dash), "--handler"),
              parse_int(range.substr(dash + 1), "--handler")};
    if (h.max_ms < h.min_ms)
      throw CLI::ValidationError("bad --handler: MAX < MIN in '" + spec + "'");
    return h;
  }
  throw CLI::ValidationError("bad --handler '" + spec + "' (noop or sleep:MIN-MAX)");
}

// Sleeps `ms`, returning early (false) when a stop was requested.
bool sleep_ms(StopSignal& stop, std::int64_t ms) {
  const auto until = steady_ms() + ms;
  for (;;) {
    const auto left = until - steady_ms();
    if (left <= 0) return true;
    pollfd pfd{stop.fd(), POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left)) > 0 || stop.triggered()) return false;
  }
}

// Registers every non-blank line of `path` as a pending topic (key = payload = the line), in one
// transaction, as the old service's loader did before starting its workers.
int seed(const Config& cfg) {
  auto db = store::open_for_writing(cfg.db);
  db.busy_timeout(5000);
  std::ifstream in(cfg.seed);
  if (!in) throw std::runtime_error("cannot read topics file '" + cfg.seed + "'");
  auto insert = db.prepare(
      "INSERT OR IGNORE INTO topics(job, key, payload, status, attempts, updated_at, created_at) "
      "VALUES (?1, ?2, ?2, 'pending', 0, ?3, ?3)");
  std::uint64_t rows = 0;
  sqlite::Transaction tx(db);
  std::string line;
  const auto now = now_ms();
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    insert.reset();
    insert.bind(1, cfg.job).bind(2, line).bind(3, now);
    insert.step();
    rows += static_cast<std::uint64_t>(db.changes());
  }
  tx.commit();
  std::printf("{\"seeded\":%llu}\n", static_cast<unsigned long long>(rows));
  return 0;
}

class DirectWorker {
 public:
  DirectWorker(Config cfg, StopSignal& stop)
      : cfg_(std::move(cfg)),
        stop_(stop),
        handler_(parse_handler(cfg_.handler)),
        db_(open_database(cfg_)),
        rng_(std::random_device{}() ^ static_cast<std::uint64_t>(::getpid())) {
    worker_id_ = "direct-" + std::to_string(cfg_.index) + "-" + std::to_string(::getpid());
  }

  Counters run() {
    std::vector<std::pair<std::string, std::string>> shard;
    if (cfg_.claim == "shard") shard = load_shard();
    counters_.topics = shard.size();
    ready_ms_ = now_ms();

    // Setup (open, schema, prepare, read the shard) waited patiently for the lock; the status
    // writes use the service's small timeout.
    db_.busy_timeout(cfg_.busy_timeout_ms);
    // Start together: the old service launched its pool and every worker began at once.
    if (cfg_.start_at_ms > 0) {
      const auto wait = cfg_.start_at_ms - now_ms();
      if (wait > 0 && !sleep_ms(stop_, wait)) counters_.interrupted = true;
    }
    start_ms_ = now_ms();
    const auto deadline = steady_ms() + cfg_.deadline_ms;

    if (cfg_.claim == "shard") {
      for (const auto& [key, payload] : shard) {
        if (!keep_going(deadline)) break;
        write("running", [&] { return mark_running(key); });
        if (!handle()) break;
        write("completed", [&] { return mark_completed(key, payload); });
      }
    } else {
      while (keep_going(deadline)) {
        std::optional<std::pair<std::string, std::string>> claimed;
        bool empty = false;
        const bool ok = write("running", [&] {
          claimed = claim_next();
          empty = !claimed;
          return !empty;
        });
        if (empty) break;               // nothing pending left
        if (!ok || !claimed) continue;  // claim gave up: the row stays pending; try again
        ++counters_.topics;
        if (!handle()) break;
        write("completed", [&] { return mark_completed(claimed->first, claimed->second); });
      }
    }
    end_ms_ = now_ms();
    return counters_;
  }

  [[nodiscard]] std::int64_t ready_ms() const noexcept { return ready_ms_; }
  [[nodiscard]] std::int64_t start_ms() const noexcept { return start_ms_; }
  [[nodiscard]] std::int64_t end_ms() const noexcept { return end_ms_; }
  [[nodiscard]] const std::string& worker_id() const noexcept { return worker_id_; }

 private:
  // The file was created by --seed with store::apply_schema (WAL is persistent); each connection
  // sets what apply_schema sets per connection, synchronous=NORMAL as the sink runs, unless
  // --synchronous says otherwise. Nothing here takes the write lock (apply_schema's INSERT OR
  // IGNORE would), and setup gets a patient busy timeout, so that two hundred processes opening
  // one file at once measure nothing but the status writes that follow.
  static sqlite::Database open_database(const Config& cfg) {
    sqlite::Database db(cfg.db, sqlite::OpenMode::read_write);
    db.busy_timeout(10000);
    db.exec("PRAGMA journal_mode=WAL");
    db.exec("PRAGMA synchronous=" + cfg.synchronous);
    return db;
  }

  bool keep_going(std::int64_t deadline) {
    if (stop_.triggered()) {
      counters_.interrupted = true;
      return false;
    }
    if (steady_ms() >= deadline) {
      counters_.deadline_hit = true;
      return false;
    }
    return true;
  }

  std::vector<std::pair<std::string, std::string>> load_shard() {
    auto select = db_.prepare("SELECT key, payload FROM topics WHERE job = ?1 ORDER BY key");
    select.bind(1, cfg_.job);
    std::vector<std::pair<std::string, std::string>> rows;
    for (std::int64_t i = 0; select.step(); ++i) {
      if (i % cfg_.count == cfg_.index) {
        rows.emplace_back(std::string(select.column_text(0)), std::string(select.column_blob(1)));
      }
    }
    return rows;
  }

  bool handle() {
    std::uniform_int_distribution<int> dist(handler_.min_ms, handler_.max_ms);
    const int ms = handler_.max_ms > 0 ? dist(rng_) : 0;
    if (!sleep_ms(stop_, ms)) {
      counters_.interrupted = true;
      return false;
    }
    ++counters_.handled;
    return true;
  }

  // One status change in its own transaction, with the service's retry loop. `body` runs inside
  // BEGIN IMMEDIATE ... COMMIT; returns true when the change was committed.
  template <typename Body>
  bool write(const char* what, Body&& body) {
    const auto began = steady_us();
    int backoff = cfg_.backoff_ms;
    for (int attempt = 0;; ++attempt) {
      if (attempt > 0) ++counters_.retries;
      try {
        sqlite::Transaction tx(db_);
        const bool changed = body();
        tx.commit();
        if (changed) {
          ++counters_.writes_ok;
          if (std::string_view(what) == "completed") ++counters_.completed_written;
        }
        counters_.write_us_max = std::max(counters_.write_us_max, steady_us() - began);
        return changed;
      } catch (const sqlite::BusyError&) {
        ++counters_.busy_errors;  // "database is locked"
      } catch (const sqlite::SqliteError& e) {
        ++counters_.other_errors;
        std::fprintf(stderr, "%s: %s update failed: %s\n", worker_id_.c_str(), what, e.what());
        return false;
      }
      if (attempt >= cfg_.retries) break;
      if (!sleep_ms(stop_, backoff)) break;
      backoff *= 2;  // no jitter: the old service's retries fire in lockstep
    }
    ++counters_.gave_up;
    if (std::string_view(what) == "completed") {
      ++counters_.gave_up_completed;
    } else {
      ++counters_.gave_up_running;
    }
    counters_.write_us_max = std::max(counters_.write_us_max, steady_us() - began);
    return false;
  }

  bool mark_running(const std::string& key) {
    running_.reset();
    running_.bind(1, worker_id_).bind(2, now_ms()).bind(3, cfg_.job).bind(4, key);
    running_.step();
    return db_.changes() > 0;
  }

  bool mark_completed(const std::string& key, const std::string& payload) {
    completed_.reset();
    completed_.bind_blob(1, payload).bind(2, now_ms()).bind(3, cfg_.job).bind(4, key);
    completed_.step();
    return db_.changes() > 0;
  }

  std::optional<std::pair<std::string, std::string>> claim_next() {
    claim_.reset();
    claim_.bind(1, worker_id_).bind(2, now_ms()).bind(3, cfg_.job);
    std::optional<std::pair<std::string, std::string>> row;
    while (claim_.step()) {
      row.emplace(std::string(claim_.column_text(0)), std::string(claim_.column_blob(1)));
    }
    return row;
  }

  Config cfg_;
  StopSignal& stop_;
  Handler handler_;
  sqlite::Database db_;
  std::mt19937_64 rng_;
  std::string worker_id_;
  Counters counters_;
  std::int64_t ready_ms_ = 0;
  std::int64_t start_ms_ = 0;
  std::int64_t end_ms_ = 0;
  sqlite::Statement running_ = db_.prepare(
      "UPDATE topics SET status = 'running', attempts = attempts + 1, worker = ?1, updated_at = ?2 "
      "WHERE job = ?3 AND key = ?4");
  sqlite::Statement completed_ = db_.prepare(
      "UPDATE topics SET status = 'completed', result = ?1, error = NULL, updated_at = ?2 "
      "WHERE job = ?3 AND key = ?4");
  sqlite::Statement claim_ = db_.prepare(
      "UPDATE topics SET status = 'running', attempts = attempts + 1, worker = ?1, updated_at = ?2 "
      "WHERE job = ?3 AND key = (SELECT key FROM topics WHERE job = ?3 AND status = 'pending' "
      "LIMIT 1) "
      "RETURNING key, payload");
};

void print_counters(const Config& cfg, const DirectWorker& w, const Counters& c) {
  const auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  std::printf(
      "{\"worker\":%d,\"pid\":%d,\"claim\":\"%s\",\"busy_timeout_ms\":%d,\"topics\":%llu,"
      "\"handled\":%llu,\"writes_ok\":%llu,\"completed_written\":%llu,\"busy_errors\":%llu,"
      "\"retries\":%llu,\"gave_up\":%llu,\"gave_up_running\":%llu,\"gave_up_completed\":%llu,"
      "\"other_errors\":%llu,\"write_ms_max\":%.1f,\"ready_ms\":%lld,\"start_ms\":%lld,\"end_ms\":%"
      "lld,"
      "\"deadline_hit\":%s,\"interrupted\":%s}\n",
      cfg.index, static_cast<int>(::getpid()), cfg.claim.c_str(), cfg.busy_timeout_ms, u(c.topics),
      u(c.handled), u(c.writes_ok), u(c.completed_written), u(c.busy_errors), u(c.retries),
      u(c.gave_up), u(c.gave_up_running), u(c.gave_up_completed), u(c.other_errors),
      static_cast<double>(c.write_us_max) / 1000.0, static_cast<long long>(w.ready_ms()),
      static_cast<long long>(w.start_ms()), static_cast<long long>(w.end_ms()),
      c.deadline_hit ? "true" : "false", c.interrupted ? "true" : "false");
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  CLI::App app{
      "The per-row design topicflow replaces: every worker process writes its own status rows.",
      "topicflow-direct-worker"};
  add_flag_option(app, "--db", cfg.db, "SQLite database file (must exist unless --seed)");
  add_flag_option(app, "--job", cfg.job, "job name");
  add_flag_option(app, "--seed", cfg.seed,
                  "register every line of this file as pending, then exit");
  add_flag_option(app, "--index", cfg.index, "this worker's index, 0..count-1")
      ->check(CLI::NonNegativeNumber);
  add_flag_option(app, "--count", cfg.count, "number of worker processes")
      ->check(CLI::Range(1, 1000000));
  add_flag_option(app, "--claim", cfg.claim,
                  "shard (rows index, index+count, ...) or queue (claim pending rows)")
      ->check(CLI::IsMember({"shard", "queue"}));
  add_flag_option(app, "--handler", cfg.handler, "noop | sleep:MIN-MAX");
  add_flag_option(app, "--busy-timeout-ms", cfg.busy_timeout_ms,
                  "sqlite3_busy_timeout of the connection")
      ->check(CLI::Range(0, 600000));
  add_flag_option(app, "--retries", cfg.retries, "retries of a status write after SQLITE_BUSY")
      ->check(CLI::Range(0, 100));
  add_flag_option(app, "--backoff-ms", cfg.backoff_ms, "first retry delay (doubles, no jitter)")
      ->check(CLI::Range(0, 600000));
  add_flag_option(app, "--synchronous", cfg.synchronous,
                  "PRAGMA synchronous of each connection (normal: as topicflow)")
      ->check(CLI::IsMember({"off", "normal", "full"}));
  add_flag_option(app, "--start-at-ms", cfg.start_at_ms,
                  "wall-clock ms since the epoch to begin at (0: now)");
  add_flag_option(app, "--deadline-ms", cfg.deadline_ms, "stop taking topics after this long")
      ->check(CLI::Range(1, 86400000));
  if (auto code = parse_command_line(app, argc, argv)) return *code;
  try {
    if (!cfg.seed.empty()) return seed(cfg);
    if (cfg.index >= cfg.count) throw CLI::ValidationError("--index must be below --count");
    parse_handler(cfg.handler);
  } catch (const CLI::ValidationError& e) {
    std::fprintf(stderr, "topicflow-direct-worker: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "topicflow-direct-worker: %s\n", e.what());
    return 1;
  }
  try {
    StopSignal stop;
    install_signal_handlers(stop);
    DirectWorker worker(cfg, stop);
    const auto counters = worker.run();
    print_counters(cfg, worker, counters);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "topicflow-direct-worker %d: %s\n", cfg.index, e.what());
    return 1;
  }
}
