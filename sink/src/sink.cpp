#include <topicflow/clock.hpp>
#include <topicflow/log.hpp>
#include <topicflow/metrics.hpp>
#include <topicflow/sink.hpp>
#include <topicflow/sink_state.hpp>
#include <topicflow/sockets.hpp>
#include <topicflow/sqlite.hpp>
#include <topicflow/store.hpp>

#include <algorithm>
#include <array>
#include <cassert>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

namespace topicflow {
namespace {

using store::Status;
constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kTimerSweepLimit = 1000;
constexpr std::int64_t kProgressIntervalMs = 100;
constexpr std::int64_t kShutdownBusyBudgetMs = 10000;
constexpr double kBatchWorkMs = 2.0;
constexpr std::int64_t kMaxTasksPerMessage = 64;
constexpr std::int64_t kWindowWithoutWorkers = 8;

using Counts = std::array<std::int64_t, 4>;

struct Entry {
  std::string id;  // job '\0' key: the key of the batch index and of the row cache
  std::size_t job_size = 0;
  std::vector<sink::Event> events;
  bool takes =
      false;  // a report of a task in transit: its commit frees room in the dispatch window

  [[nodiscard]] std::string_view job() const noexcept {
    return std::string_view(id).substr(0, job_size);
  }
  [[nodiscard]] std::string_view key() const noexcept {
    return std::string_view(id).substr(job_size + 1);
  }
};

// Where the ready sweep goes on: every ready row (pending, not handed out) that is not in
// transit lies after it in (due_at, rowid) order. The sweep moves it over the rows it reads;
// a write that makes a row ready behind it moves it back (see Effects::ready_from).
struct ReadyCursor {
  std::int64_t due = std::numeric_limits<std::int64_t>::min();
  std::int64_t rowid = std::numeric_limits<std::int64_t>::min();
  [[nodiscard]] bool before(std::int64_t d, std::int64_t r) const noexcept {
    return due < d || (due == d && rowid < r);
  }
};

struct RequeueRequest {
  std::string client;
  std::string job;
};

// Everything one commit did, merged into the sink's state only once COMMIT succeeded.
struct Effects {
  std::vector<wire::Task> tasks;
  std::map<std::string, Counts, std::less<>> count_delta;
  std::int64_t in_transit_delta = 0;
  std::vector<wire::Ack> acks;
  std::array<std::uint64_t, 4> written{};  // rows written, by new status
  std::uint64_t updates = 0;
  std::uint64_t redelivered = 0;
  std::uint64_t retried = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t stale = 0;
  std::uint64_t bogus = 0;
  std::uint64_t guard_refused = 0;
  std::uint64_t lease_expired = 0;
  std::uint64_t taken = 0;  // tasks in transit that a worker started (or finished)
  // Row cache changes, applied in order once COMMIT succeeded (nullopt: forget the row).
  std::vector<std::pair<std::string, std::optional<sink::Row>>> cache;
  ReadyCursor cursor;  // the ready cursor as this commit leaves it
  // Rows this commit gave back from transit to ready (released, retried at once): the row cache
  // still says "in transit" until COMMIT, and the ready sweep must not skip them.
  std::vector<std::int64_t> ready_again;

  Counts& delta(std::string_view job) {
    auto it = count_delta.find(job);
    if (it == count_delta.end()) it = count_delta.emplace(job, Counts{}).first;
    return it->second;
  }

  // A row is ready at (due, rowid): the sweep must still reach it.
  void ready_from(std::int64_t due, std::int64_t rowid) {
    if (!cursor.before(due, rowid)) cursor = ReadyCursor{due, rowid - 1};
  }
};

struct SeenWorker {
  std::int64_t last_seen_ms = 0;
  std::uint32_t slots = 0;
};

sink::EventKind to_event_kind(wire::UpdateKind kind) {
  switch (kind) {
    case wire::UpdateKind::started: return sink::EventKind::started;
    case wire::UpdateKind::heartbeat: return sink::EventKind::heartbeat;
    case wire::UpdateKind::completed: return sink::EventKind::completed;
    case wire::UpdateKind::failed: return sink::EventKind::failed;
    case wire::UpdateKind::released: return sink::EventKind::released;
  }
  return sink::EventKind::started;
}

}  // namespace

class Sink::Impl {
 public:
  Impl(SinkConfig cfg, zmq::context_t* context)
      : cfg_(std::move(cfg)),
        policy_{cfg_.lease_ms, cfg_.max_attempts, cfg_.dispatch_timeout_ms},
        own_context_(context == nullptr ? std::make_unique<zmq::context_t>(1) : nullptr),
        context_(context == nullptr ? own_context_.get() : context),
        db_(store::open_for_writing(cfg_.db)),
        select_row_(
            db_,
            "SELECT status, attempts, due_at, dispatched_at, error, submission, worker, rowid "
            "FROM topics WHERE job = ?1 AND key = ?2"),
        insert_row_(db_,
                    "INSERT INTO topics(job, key, payload, status, attempts, error, updated_at, "
                    "created_at, submission, due_at, dispatched_at, worker) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10, ?11) "
                    "ON CONFLICT(job, key) DO NOTHING"),
        // The guard: a completed row never changes; a failed row changes only by an explicit
        // requeue; otherwise attempts never go down. The state machine already ensures this;
        // the SQL makes it impossible to get wrong.
        update_row_(db_,
                    "UPDATE topics SET status = ?3, attempts = ?4, error = ?5, updated_at = ?6, "
                    "submission = ?7, due_at = ?8, dispatched_at = ?9, worker = ?10, "
                    "payload = iif(?11, ?12, payload), result = iif(?13, ?14, result) "
                    "WHERE rowid = ?16 AND job = ?1 AND key = ?2 AND status <> 'completed' AND "
                    "((status <> 'failed' AND attempts <= ?4) OR (?15 AND status = 'failed'))"),
        // The two writes of an attempt's normal life (its first report: running, or completed at
        // once), each setting only what its transition changes (fewer bindings and expressions
        // than the generic UPDATE) under the same guard as the generic one with requeue off: not
        // completed, not failed, attempts not ahead. They write the attempt too: the row held
        // the previous one while the task was in transit (see dispatch_ready).
        run_row_(db_,
                 "UPDATE topics SET status = 'running', attempts = ?6, due_at = ?3, dispatched_at "
                 "= NULL, "
                 "updated_at = ?4, worker = ?5 WHERE rowid = ?7 AND job = ?1 AND key = ?2 AND "
                 "status <> 'completed' AND status <> 'failed' AND attempts <= ?6"),
        complete_row_(
            db_,
            "UPDATE topics SET status = 'completed', attempts = ?6, result = ?3, error = NULL, "
            "updated_at = ?4, due_at = NULL, dispatched_at = NULL, worker = ?5 WHERE rowid = ?7 "
            "AND "
            "job = ?1 AND key = ?2 AND status <> 'completed' AND status <> 'failed' AND attempts "
            "<= ?6"),
        sweep_timers_(db_,
                      "SELECT job, key, payload, status, attempts, dispatched_at, error, "
                      "submission, worker, rowid "
                      "FROM topics WHERE (status = 'running' OR dispatched_at IS NOT NULL) "
                      "AND due_at <= ?1 ORDER BY due_at LIMIT ?2"),
        // Ready rows after the ready cursor, in (due_at, rowid) order, read lazily (no LIMIT: the
        // index order is the ORDER BY, so stepping stops where the window's room ends): the
        // rest of the cursor's due time by rowid, then the later due times up to now. Two
        // statements because SQLite seeks a partial index by (due_at = ? AND rowid > ?) but not
        // by the row value (due_at, rowid) > (?, ?).
        ready_at_(
            db_,
            "SELECT rowid, due_at, job, key, payload, attempts, error, submission, worker FROM "
            "topics "
            "WHERE status = 'pending' AND dispatched_at IS NULL AND due_at = ?1 AND rowid > ?2 "
            "ORDER BY rowid"),
        ready_after_(
            db_,
            "SELECT rowid, due_at, job, key, payload, attempts, error, submission, worker FROM "
            "topics "
            "WHERE status = 'pending' AND dispatched_at IS NULL AND due_at > ?1 AND due_at <= ?2 "
            "ORDER BY due_at, rowid"),
        next_timer_(
            db_,
            "SELECT min(due_at) FROM topics WHERE status = 'running' OR dispatched_at IS NOT NULL"),
        next_ready_at_(db_,
                       "SELECT 1 FROM topics WHERE status = 'pending' AND dispatched_at IS NULL "
                       "AND due_at = ?1 "
                       "AND rowid > ?2 LIMIT 1"),
        next_ready_after_(
            db_,
            "SELECT due_at FROM topics WHERE status = 'pending' AND dispatched_at IS NULL AND "
            "due_at > ?1 ORDER BY due_at LIMIT 1"),
        requeue_job_(db_,
                     "UPDATE topics SET status = 'pending', attempts = 0, dispatched_at = NULL, "
                     "due_at = ?2, updated_at = ?2 WHERE job = ?1 AND status = 'failed'"),
        set_meta_(db_,
                  "INSERT INTO meta(name, value) VALUES (?1, ?2) "
                  "ON CONFLICT(name) DO UPDATE SET value = excluded.value"),
        pull_(make_socket(*context_, zmq::socket_type::pull, {.sndhwm = 1000, .rcvhwm = 10000})),
        pub_(make_socket(*context_, zmq::socket_type::pub, {.sndhwm = 100000, .rcvhwm = 1000})),
        push_(make_socket(
            *context_, zmq::socket_type::push,
            {.sndhwm = static_cast<int>(std::max<std::int64_t>(cfg_.dispatch_window * 2, 1000)),
             .rcvhwm = 1000})),
        retry_backoff_(cfg_.retry_base_ms, cfg_.retry_max_ms),
        busy_backoff_(cfg_.busy_base_ms, cfg_.busy_max_ms) {
    db_.busy_timeout(0);  // busy handling is ours: keep the batch, back off with jitter, log
    recompute_window();
    load_state();
    if (cfg_.security.enabled()) curve_.emplace(*context_, cfg_.security);
    const CurveServer* curve = curve_ ? &*curve_ : nullptr;
    bind_socket(pull_, "--sink", cfg_.endpoints.sink, curve);
    bind_socket(pub_, "--events", cfg_.endpoints.events, curve);
    connect_socket(push_, "--frontend", cfg_.endpoints.frontend, cfg_.security);
    spdlog::info("sink ready: db {} ({} jobs, {} unfinished topics), PULL {}, PUB {}, tasks to {}",
                 cfg_.db, counts_.size(), unfinished(), endpoint(pull_), endpoint(pub_),
                 cfg_.endpoints.frontend);
    spdlog::info(
        "batching: up to {} updates or {} ms; lease {} ms; max attempts {}; retry backoff {}..{} "
        "ms; "
        "dispatch window {}, timeout {} ms",
        cfg_.batch_max, cfg_.batch_delay_ms, cfg_.lease_ms, cfg_.max_attempts, cfg_.retry_base_ms,
        cfg_.retry_max_ms, cfg_.dispatch_window, cfg_.dispatch_timeout_ms);
    publish_snapshot();
    if (cfg_.metrics_port > 0) start_metrics(cfg_.metrics_port);
  }

  void start_metrics(int port) {
    metrics_ = std::make_unique<MetricsServer>(
        cfg_.metrics_address, port, [this] { return render_metrics(); },
        [this] { return health(); });
    spdlog::info("metrics on http://{}:{}/metrics, health on /healthz", cfg_.metrics_address,
                 metrics_->port());
  }
  int metrics_port() const { return metrics_ ? metrics_->port() : 0; }

  void run(const StopSignal& stop) {
    stats_window_start_ = steady_ms();
    while (!stop.triggered()) {
      const auto now = steady_ms();
      std::array<zmq::pollitem_t, 2> items{
          {{nullptr, stop.fd(), ZMQ_POLLIN, 0}, {pull_.handle(), 0, ZMQ_POLLIN, 0}}};
      const bool can_read = batch_events_ < static_cast<std::size_t>(cfg_.buffer_max);
      poll_items(items.data(), can_read ? 2 : 1, poll_timeout(now));
      if (stop.triggered()) break;
      if (can_read) drain();
      maybe_commit();
      periodic();
    }
    shutdown();
  }

  SinkCounters counters() const { return counters_; }
  std::string endpoint(const zmq::socket_t& s) const { return s.get(zmq::sockopt::last_endpoint); }
  std::string sink_endpoint() const { return endpoint(pull_); }
  std::string events_endpoint() const { return endpoint(pub_); }

 private:
  // ---- startup -------------------------------------------------------------------------------

  void load_state() {
    for (const auto& jc : store::read_counts(db_)) {
      auto& c = counts_[jc.job];
      for (std::size_t i = 0; i < 4; ++i) c[i] = static_cast<std::int64_t>(jc.by_status[i]);
    }
    auto meta = db_.prepare("SELECT value FROM meta WHERE name = 'broker_instance'");
    if (meta.step()) broker_instance_ = std::string(meta.column_text(0));
    refresh_due_hints();
  }

  std::int64_t unfinished() const {
    std::int64_t n = 0;
    for (const auto& [job, c] : counts_) n += c[0] + c[1];
    return n;
  }

  // ---- receiving -----------------------------------------------------------------------------

  void drain() {
    for (std::size_t i = 0; i < 4096 && batch_events_ < static_cast<std::size_t>(cfg_.buffer_max);
         ++i) {
      auto msg = try_recv(pull_);
      if (!msg) break;
      handle(*msg);
      if (batch_events_ >= static_cast<std::size_t>(cfg_.batch_max)) break;
    }
  }

  void handle(const zmq::message_t& msg) {
    ++counters_.messages;
    wire::Message message;
    try {
      message =
          wire::decode(std::string_view(static_cast<const char*>(msg.data()), msg.size()), limits_);
    } catch (const wire::DecodeError& e) {
      ++counters_.decode_errors;
      bad_messages_.warn(fmt::format("dropped a bad message ({} bytes): {}", msg.size(), e.what()));
      return;
    }
    std::visit([this](auto& m) { on_message(m); }, message);
  }

  void on_message(wire::Submit& m) {
    const auto ack = static_cast<std::int32_t>(acks_.size());
    acks_.push_back(wire::Ack{.client = m.submission, .kind = wire::AckKind::submit, .seq = m.seq});
    if (m.items.empty()) {
      mark_batch_started();
      return;
    }
    const std::string_view origin = origins_.emplace_back(std::move(m.submission));
    for (auto& item : m.items) {
      add_event(m.job, item.key,
                sink::Event{.kind = sink::EventKind::submit,
                            .requeue_failed = m.requeue_failed,
                            .data = std::move(item.payload),
                            .origin = origin,
                            .ack = ack});
    }
  }

  void on_message(wire::Report& m) {
    if (!m.worker.empty()) {
      auto& seen = workers_seen_[m.worker];
      const bool resized = seen.slots != m.slots;
      seen = SeenWorker{steady_ms(), m.slots};
      if (resized) recompute_window();
    }
    if (m.updates.empty()) return;
    const std::string_view origin = origins_.emplace_back(std::move(m.worker));
    for (auto& u : m.updates) {
      add_event(u.job, u.key,
                sink::Event{.kind = to_event_kind(u.kind),
                            .attempt = u.attempt,
                            .retryable = u.retryable,
                            .data = std::move(u.data),
                            .origin = origin});
    }
  }

  void on_message(const wire::Hello& m) {
    publish(wire::ack_topic(m.client), wire::Ack{.client = m.client, .kind = wire::AckKind::hello});
    if (!m.job.empty()) publish_progress(m.job);
  }

  void on_message(const wire::Requeue& m) {
    requeues_.push_back(RequeueRequest{m.client, m.job});
    mark_batch_started();
  }

  void on_message(const wire::BrokerHello& m) {
    if (m.instance == broker_instance_ || new_broker_ == m.instance) return;
    if (broker_instance_.empty()) {
      spdlog::info("broker instance {} announced itself", m.instance);
    } else {
      spdlog::info("broker instance {} announced itself (was {}): redelivering tasks in transit",
                   m.instance, broker_instance_);
    }
    new_broker_ = m.instance;
    mark_batch_started();
  }

  template <typename T>
  void on_message(const T& /*unexpected*/) {
    ++counters_.decode_errors;
    bad_messages_.warn(
        fmt::format("dropped a message of type {} that does not belong on the sink socket",
                    wire::type_name(wire::Message(T{}))));
  }

  // The key of a topic in the batch index and the row cache: job NUL key.
  static void row_id(std::string& id, std::string_view job, std::string_view key) {
    id.reserve(job.size() + key.size() + 1);
    id.assign(job).push_back('\0');
    id.append(key);
  }
  static std::string row_id(std::string_view job, std::string_view key) {
    std::string id;
    row_id(id, job, key);
    return id;
  }

  void add_event(std::string_view job, std::string_view key, sink::Event event) {
    row_id(id_scratch_, job, key);  // (a lookup needs no allocation of its own)
    auto it = index_.find(id_scratch_);
    if (it == index_.end()) {
      if (batch_entries_ == entries_.size()) entries_.emplace_back();
      auto& added = entries_[batch_entries_];  // (its events were cleared with its batch)
      added.id = id_scratch_;
      added.job_size = job.size();
      added.takes = false;
      it = index_.emplace(added.id, batch_entries_++).first;
    }
    auto& entry = entries_[it->second];
    if (!entry.takes && event.kind != sink::EventKind::submit &&
        event.kind != sink::EventKind::heartbeat) {
      // Only a hint for when to commit (the state machine decides what the event does).
      const auto cached = row_cache_.find(entry.id);
      if (cached != row_cache_.end() && cached->second.in_transit()) {
        entry.takes = true;
        ++batch_takes_;
      }
    }
    entry.events.push_back(std::move(event));
    ++batch_events_;
    mark_batch_started();
  }

  void mark_batch_started() {
    if (batch_started_ms_ < 0) batch_started_ms_ = steady_ms();
  }

  // ---- committing ----------------------------------------------------------------------------

  [[nodiscard]] bool has_batch() const {
    return batch_entries_ > 0 || !requeues_.empty() || new_broker_.has_value() || !acks_.empty();
  }

  // Tasks handed to the broker and not started yet (each is a row in transit in the row cache).
  [[nodiscard]] std::int64_t in_transit() const {
    return static_cast<std::int64_t>(transit_by_due_.size());
  }
  [[nodiscard]] std::int64_t budget() const {
    return std::max<std::int64_t>(window_ - in_transit(), 0);
  }

  // Due work, or enough room in the dispatch window for topics waiting: committed now rather
  // than at the end of the batch delay. The room counts the tasks the buffered reports say were
  // taken (their commit frees it), so a worker that starts its queued task gets the next one a
  // round trip later instead of a batch delay later: what keeps `noop` streaming while the
  // window grows, and a slot from idling when its queue is one task deep.
  [[nodiscard]] bool sweep_due(std::int64_t wall) const {
    if (next_timer_due_ <= wall) return true;
    return next_ready_due_ <= wall && room_for_ready();
  }

  [[nodiscard]] bool room_for_ready() const {
    return budget() + static_cast<std::int64_t>(batch_takes_) >=
           std::max<std::int64_t>(1, window_ / 4);
  }

  std::int64_t poll_timeout(std::int64_t now) const {
    std::int64_t deadline = now + 250;
    if (retry_at_ms_ > 0) {
      deadline = std::min(deadline, retry_at_ms_);
    } else {
      if (batch_started_ms_ >= 0)
        deadline = std::min(deadline, batch_started_ms_ + cfg_.batch_delay_ms);
      const auto wall = now_ms();
      auto next_due = next_timer_due_;
      // (only when that would commit: with less room, waking for ready rows only spins)
      if (room_for_ready()) next_due = std::min(next_due, next_ready_due_);
      if (next_due != kNever)
        deadline = std::min(deadline, now + std::max<std::int64_t>(next_due - wall, 0));
    }
    if (!dirty_jobs_.empty()) deadline = std::min(deadline, now + kProgressIntervalMs);
    return std::max<std::int64_t>(deadline - now, 0);
  }

  void maybe_commit() {
    const auto now = steady_ms();
    if (retry_at_ms_ > 0 && now < retry_at_ms_) return;  // backing off a busy database
    const bool full = batch_events_ >= static_cast<std::size_t>(cfg_.batch_max);
    const bool old = batch_started_ms_ >= 0 && now - batch_started_ms_ >= cfg_.batch_delay_ms;
    if (full || old || retry_at_ms_ > 0 || sweep_due(now_ms())) try_commit();
  }

  // One transaction for the whole batch plus the scheduler's sweep. Returns false on busy.
  bool try_commit() {
    const auto started_us = steady_us();
    const auto wall = now_ms();
    // First: tasks in transit that are lost. Nothing about them is in the database (their rows
    // are ready, with the previous attempt), so forgetting them here is the whole resend: the
    // ready sweep below sends them again with the same attempt.
    if (const auto n = forget_transit(wall); n > 0) {
      spdlog::warn(
          "{} tasks handed to the broker {} ms ago were never started (lost with a worker?): "
          "sending them again",
          n, policy_.dispatch_timeout_ms);
    }
    // Tasks handed to a broker that has since restarted are lost with its queue. The first
    // broker this database ever heard of replaces nobody: nothing to resend (tasks dispatched
    // before its first hello are in its queue).
    if (new_broker_ && !broker_instance_.empty()) {
      if (const auto n = forget_transit(kNever); n > 0) {
        spdlog::warn("broker restarted: {} tasks in transit are redelivered", n);
      }
    }
    Effects fx;
    fx.cursor = cursor_;
    try {
      sqlite::Transaction tx(db_);
      if (new_broker_) {
        set_meta_.bind(1, std::string_view("broker_instance")).bind(2, *new_broker_);
        set_meta_.step();
        set_meta_.reset();
      }
      for (std::size_t i = 0; i < batch_entries_; ++i) apply_entry(entries_[i], wall, fx);
      for (const auto& rq : requeues_) apply_requeue(rq, wall, fx);
      sweep(wall, fx);
      tx.commit();
    } catch (const sqlite::BusyError& e) {
      on_busy(e);
      return false;
    }
    on_committed(fx, started_us);
    return true;
  }

  void on_busy(const sqlite::BusyError& e) {
    ++counters_.busy_retries;
    const auto delay = std::max<std::int64_t>(busy_backoff_.delay(std::min(busy_attempt_, 20u)), 1);
    ++busy_attempt_;
    if (busy_since_ms_ == 0) busy_since_ms_ = steady_ms();
    retry_at_ms_ = steady_ms() + delay;
    spdlog::warn("database busy ({}); keeping {} updates, retry {} in {} ms", e.what(),
                 batch_events_, busy_attempt_, delay);
  }

  sink::Row load_row(std::string_view job, std::string_view key) {
    sink::Row row;
    select_row_.bind_static(1, job).bind_static(2, key);
    if (select_row_.step()) {
      row.exists = true;
      row.status = store::parse_status(select_row_.column_text(0)).value_or(Status::pending);
      row.attempts = select_row_.column_int(1);
      if (!select_row_.is_null(2)) row.due_at = select_row_.column_int(2);
      if (!select_row_.is_null(3)) row.dispatched_at = select_row_.column_int(3);
      if (!select_row_.is_null(4)) row.error = std::string(select_row_.column_text(4));
      row.submission = std::string(select_row_.column_text(5));
      row.worker = std::string(select_row_.column_text(6));
      row.rowid = select_row_.column_int(7);
    }
    select_row_.reset();
    return row;
  }

  enum class Write : std::uint8_t { written, exists, refused };

  // Which UPDATE writes the change from `before` to `row`: one of the narrow statements when
  // the transition is one of a topic's normal life and changes nothing else, else the generic
  // one (requeue, new payload, lease expiry, retry, failure, release, ...).
  enum class Narrow : std::uint8_t { none, run, complete };

  static Narrow narrow_write(const sink::Row& before, const sink::Row& row) {
    if (!before.exists || row.requeued || row.new_payload || row.attempts < before.attempts ||
        row.submission != before.submission || store::is_terminal(before.status)) {
      return Narrow::none;
    }
    const bool same_attempt = row.attempts == before.attempts;
    switch (row.status) {
      case Status::running:
        return same_attempt && !row.new_result && !row.dispatched_at && row.due_at &&
                       row.error == before.error
                   ? Narrow::run
                   : Narrow::none;
      case Status::completed:
        return same_attempt && row.new_result && !row.dispatched_at && !row.due_at && !row.error
                   ? Narrow::complete
                   : Narrow::none;
      case Status::pending:
      case Status::failed: return Narrow::none;
    }
    return Narrow::none;
  }

  // Runs a guarded UPDATE; false if the guard refused it.
  bool step_update(sqlite::Statement& stmt) {
    stmt.step();
    const auto changed = db_.changes();
    stmt.reset();
    return changed == 1;
  }

  bool update_narrow(Narrow kind, std::string_view job, std::string_view key, const sink::Row& row,
                     std::int64_t wall) {
    switch (kind) {
      case Narrow::run:
        run_row_.bind_static(1, job).bind_static(2, key).bind(3, *row.due_at).bind(4, wall);
        run_row_.bind_static(5, row.worker).bind(6, row.attempts).bind(7, row.rowid);
        return step_update(run_row_);
      case Narrow::complete:
        complete_row_.bind_static(1, job)
            .bind_static(2, key)
            .bind_blob_static(3, *row.new_result)
            .bind(4, wall);
        complete_row_.bind_static(5, row.worker).bind(6, row.attempts).bind(7, row.rowid);
        return step_update(complete_row_);
      case Narrow::none: break;
    }
    return false;
  }

  // INSERT for a row not in the database yet (`before` does not exist: ON CONFLICT DO NOTHING,
  // so a row that exists after all comes back as Write::exists and nothing changed), else a
  // guarded UPDATE.
  // Sets row.rowid after an INSERT; an existing row is addressed by the rowid it was read with.
  Write write_row(std::string_view job, std::string_view key, const sink::Row& before,
                  sink::Row& row, std::int64_t wall, Effects& fx) {
    auto bind_opt = [](sqlite::Statement& s, int i, const std::optional<std::int64_t>& v) {
      if (v)
        s.bind(i, *v);
      else
        s.bind_null(i);
    };
    // In transit lives in the sink's memory only (dispatch_ready): no write hands a task out.
    assert(!row.dispatched_at);
    const auto status = store::to_string(row.status);
    bool updated = true;
    if (const auto narrow = narrow_write(before, row); narrow != Narrow::none) {
      updated = update_narrow(narrow, job, key, row, wall);
    } else if (!before.exists) {
      insert_row_.bind_static(1, job).bind_static(2, key);
      insert_row_.bind_blob_static(
          3, row.new_payload ? std::string_view(*row.new_payload) : std::string_view());
      insert_row_.bind_static(4, status).bind(5, row.attempts);
      if (row.error)
        insert_row_.bind_static(6, *row.error);
      else
        insert_row_.bind_null(6);
      insert_row_.bind(7, wall).bind_static(8, row.submission);
      bind_opt(insert_row_, 9, row.due_at);
      bind_opt(insert_row_, 10, row.dispatched_at);
      insert_row_.bind_static(11, row.worker);
      insert_row_.step();
      const auto inserted = db_.changes();
      insert_row_.reset();
      if (inserted != 1) return Write::exists;
      row.rowid = db_.last_insert_rowid();
    } else {
      update_row_.bind_static(1, job).bind_static(2, key).bind_static(3, status).bind(4,
                                                                                      row.attempts);
      if (row.error)
        update_row_.bind_static(5, *row.error);
      else
        update_row_.bind_null(5);
      update_row_.bind(6, wall).bind_static(7, row.submission);
      bind_opt(update_row_, 8, row.due_at);
      bind_opt(update_row_, 9, row.dispatched_at);
      update_row_.bind_static(10, row.worker);
      update_row_.bind(11, std::int64_t{row.new_payload.has_value()});
      if (row.new_payload)
        update_row_.bind_blob_static(12, *row.new_payload);
      else
        update_row_.bind_null(12);
      update_row_.bind(13, std::int64_t{row.new_result.has_value()});
      if (row.new_result)
        update_row_.bind_blob_static(14, *row.new_result);
      else
        update_row_.bind_null(14);
      update_row_.bind(15, std::int64_t{row.requeued}).bind(16, row.rowid);
      updated = step_update(update_row_);
    }
    if (!updated) {
      ++fx.guard_refused;
      spdlog::error("internal: the SQL guard refused an update of {}/{} to {} (attempt {})", job,
                    key, status, row.attempts);
      return Write::refused;
    }
    ++fx.updates;
    ++fx.written[static_cast<std::size_t>(row.status)];
    if (row.status == Status::pending && row.due_at) {  // ready: the sweep must reach it
      fx.ready_from(*row.due_at, row.rowid);
      if (before.in_transit()) fx.ready_again.push_back(row.rowid);
    }
    return Write::written;
  }

  // The row cache holds the committed state of rows in flight (handed to the broker, or
  // running): the rows whose next event is a worker's report. A report then needs no SELECT.
  // The database stays the source of truth: a row not in the cache is read from it (after a
  // restart, or for a pending or finished row), every write is still guarded in SQL, and the
  // cache changes only after the COMMIT of the write it mirrors. Its size is bounded by the
  // dispatch window plus the rows running.
  static bool cacheable(const sink::Row& row) {
    return row.exists && (row.status == Status::running || row.in_transit());
  }

  static void stage_cache(Effects& fx, std::string id, Write written, sink::Row row) {
    if (written == Write::written && cacheable(row)) {
      row.new_payload.reset();
      row.new_result.reset();
      row.changed = false;
      row.requeued = false;
      fx.cache.emplace_back(std::move(id), std::move(row));
    } else {
      fx.cache.emplace_back(std::move(id), std::nullopt);
    }
  }

  void account(std::string_view job, const sink::Row& before, const sink::Row& after, Effects& fx) {
    auto& delta = fx.delta(job);
    if (before.exists) --delta[static_cast<std::size_t>(before.status)];
    if (after.exists) ++delta[static_cast<std::size_t>(after.status)];
    fx.in_transit_delta += static_cast<std::int64_t>(after.in_transit()) -
                           static_cast<std::int64_t>(before.in_transit());
    if (before.in_transit() && after.exists && after.status != Status::pending) ++fx.taken;
  }

  void apply_entry(Entry& entry, std::int64_t wall, Effects& fx) {
    if (auto it = row_cache_.find(entry.id); it != row_cache_.end()) {
      (void)apply_events(entry, it->second, true, wall, fx);
      return;
    }
    // A registration is INSERTed first: a new topic needs no SELECT. Only if the row exists
    // after all (a resubmission) is it read and the events applied to what is there.
    if (entry.events.front().kind == sink::EventKind::submit &&
        apply_events(entry, sink::Row{}, false, wall, fx)) {
      return;
    }
    const bool applied = apply_events(entry, load_row(entry.job(), entry.key()), false, wall, fx);
    assert(applied);
    (void)applied;
  }

  // Applies an entry's events to `row` (the state before them; `cached`: from the row cache)
  // and writes the result. Returns false, with no effect at all, when `row` said "no row" but
  // the INSERT found one.
  bool apply_events(Entry& entry, const sink::Row& before, bool cached, std::int64_t wall,
                    Effects& fx) {
    sink::Row row = before;
    outcomes_.clear();
    for (const auto& event : entry.events)
      outcomes_.push_back(sink::apply(row, event, policy_, retry_backoff_, wall));
    auto written = Write::refused;
    if (row.changed) {
      written = write_row(entry.job(), entry.key(), before, row, wall, fx);
      if (written == Write::exists) return false;
    }
    for (std::size_t i = 0; i < entry.events.size(); ++i) {
      const auto& event = entry.events[i];
      switch (outcomes_[i]) {
        case sink::Outcome::retry_scheduled: ++fx.retried; break;
        case sink::Outcome::stale: ++fx.stale; break;
        case sink::Outcome::bogus: ++fx.bogus; break;
        case sink::Outcome::duplicate:
          if (event.kind != sink::EventKind::submit) ++fx.duplicates;
          break;
        default: break;
      }
      if (event.ack >= 0) count_ack(acks_[static_cast<std::size_t>(event.ack)], outcomes_[i]);
    }
    account(entry.job(), before, row, fx);
    // (a row neither cached before nor after needs no cache change: an entry's row is staged
    // first in its commit, so nothing before it in fx.cache could have put it there)
    if (row.changed && (cached || (written == Write::written && cacheable(row)))) {
      stage_cache(fx, entry.id, written, std::move(row));
    }
    return true;
  }

  static void count_ack(wire::Ack& ack, sink::Outcome outcome) {
    switch (outcome) {
      case sink::Outcome::accepted: ++ack.accepted; break;
      case sink::Outcome::duplicate: ++ack.duplicates; break;
      case sink::Outcome::skipped_completed: ++ack.skipped_completed; break;
      case sink::Outcome::skipped_failed: ++ack.skipped_failed; break;
      case sink::Outcome::requeued: ++ack.requeued; break;
      case sink::Outcome::already_queued: ++ack.already_queued; break;
      default: ++ack.rejected; break;
    }
  }

  void apply_requeue(const RequeueRequest& rq, std::int64_t wall, Effects& fx) {
    requeue_job_.bind_static(1, rq.job).bind(2, wall);
    requeue_job_.step();
    const auto n = db_.changes();
    requeue_job_.reset();
    auto& delta = fx.delta(rq.job);
    delta[static_cast<std::size_t>(Status::failed)] -= n;
    delta[static_cast<std::size_t>(Status::pending)] += n;
    fx.updates += static_cast<std::uint64_t>(n);
    fx.written[static_cast<std::size_t>(Status::pending)] += static_cast<std::uint64_t>(n);
    fx.acks.push_back(wire::Ack{.client = rq.client,
                                .kind = wire::AckKind::requeue,
                                .requeued = static_cast<std::uint64_t>(n)});
    if (n > 0) fx.cursor = ReadyCursor{};  // ready again anywhere in (due_at, rowid) order
    if (n > 0) spdlog::info("requeued {} failed topics of job {}", n, rq.job);
  }

  struct DueRow {
    std::string job;
    std::string key;
    std::string payload;
    sink::Row row;
  };

  std::vector<DueRow> collect(sqlite::Statement& select, std::int64_t wall, std::int64_t limit) {
    std::vector<DueRow> rows;
    if (limit <= 0) return rows;
    select.bind(1, wall).bind(2, limit);
    while (select.step()) {
      DueRow d;
      d.job = std::string(select.column_text(0));
      d.key = std::string(select.column_text(1));
      d.payload = std::string(select.column_blob(2));
      d.row.exists = true;
      d.row.status = store::parse_status(select.column_text(3)).value_or(Status::pending);
      d.row.attempts = select.column_int(4);
      if (!select.is_null(5)) d.row.dispatched_at = select.column_int(5);
      if (!select.is_null(6)) d.row.error = std::string(select.column_text(6));
      d.row.submission = std::string(select.column_text(7));
      d.row.worker = std::string(select.column_text(8));
      d.row.rowid = select.column_int(9);
      d.row.due_at = wall;
      rows.push_back(std::move(d));
    }
    select.reset();
    return rows;
  }

  // The scheduler: expired leases first (each makes its row ready again), then new attempts
  // for ready rows up to the window's room. Tasks lost in transit were forgotten before
  // (forget_transit): their rows are ready too.
  void sweep(std::int64_t wall, Effects& fx) {
    auto timers = collect(sweep_timers_, wall, kTimerSweepLimit);
    for (auto& d : timers) {
      const sink::Row before = d.row;
      const auto r = sink::on_due(d.row, policy_, wall);
      if (!d.row.changed) continue;
      assert(!r.dispatch);
      const auto written = write_row(d.job, d.key, before, d.row, wall, fx);
      account(d.job, before, d.row, fx);
      stage_cache(fx, row_id(d.job, d.key), written, std::move(d.row));
      if (r.lease_expired) ++fx.lease_expired;
      if (r.redelivery) ++fx.redelivered;
    }
    dispatch_ready(wall, window_ - (in_transit() + fx.in_transit_delta), fx);
  }

  // Hands the next attempt of ready rows to the broker, oldest due first (registration order
  // for first attempts), without writing them: the row keeps its previous attempt, and the new
  // one (sink::on_due: attempts + 1, in transit until the dispatch timeout) lives in the row
  // cache until the attempt's first report writes it. A sink that dies meanwhile leaves the row
  // ready, so the next one sends the same attempt again, as for a task lost in transit, and
  // still accepts the first one's reports (sink::apply adopts attempt + 1 of a ready row).
  // Before, this was a third row write per backlogged topic: ~30 % of the sink's instructions.
  void dispatch_ready(std::int64_t wall, std::int64_t room, Effects& fx) {
    if (room <= 0) return;
    auto take = [&](sqlite::Statement& q) {
      while (room > 0 && q.step()) {
        const auto rowid = q.column_int(0);
        const auto due = q.column_int(1);
        fx.cursor = ReadyCursor{due, rowid};
        const auto job = q.column_text(2);
        const auto key = q.column_text(3);
        auto id = row_id(job, key);
        // Already in transit (sent before a cursor reset): not again. Unless this commit gave
        // it back (its cache entry changes only at COMMIT).
        if (const auto it = row_cache_.find(id);
            it != row_cache_.end() && it->second.in_transit() &&
            std::find(fx.ready_again.begin(), fx.ready_again.end(), rowid) ==
                fx.ready_again.end()) {
          continue;
        }
        sink::Row row;
        row.exists = true;
        row.status = Status::pending;
        row.rowid = rowid;
        row.due_at = due;
        row.attempts = q.column_int(5);
        if (!q.is_null(6)) row.error = std::string(q.column_text(6));
        row.submission = std::string(q.column_text(7));
        row.worker = std::string(q.column_text(8));
        const auto r = sink::on_due(row, policy_, wall);
        assert(r.dispatch && row.in_transit());
        (void)r;
        fx.tasks.push_back(wire::Task{std::string(job), std::string(key),
                                      std::string(q.column_blob(4)),
                                      static_cast<std::uint32_t>(row.attempts)});
        // pending before and after, now in transit: what account() would count
        ++fx.in_transit_delta;
        stage_cache(fx, std::move(id), Write::written, std::move(row));
        --room;
      }
      q.reset();
    };
    const auto from = fx.cursor;
    ready_at_.bind(1, from.due).bind(2, from.rowid);
    take(ready_at_);
    if (room > 0) {
      ready_after_.bind(1, from.due).bind(2, wall);
      take(ready_after_);
    }
  }

  // Forgets the tasks in transit whose dispatch timeout is at or before `until` (kNever: all,
  // the broker restarted): lost in a dead worker's buffers or a dead broker's queue. Their rows
  // are ready in the database, so the ready sweep sends them again with the same attempt.
  std::size_t forget_transit(std::int64_t until) {
    std::size_t n = 0;
    while (!transit_by_due_.empty() && transit_by_due_.begin()->first.first <= until) {
      const auto cached = row_cache_.find(*transit_by_due_.begin()->second);
      transit_by_due_.erase(transit_by_due_.begin());
      row_cache_.erase(cached);
      ++n;
    }
    if (n > 0) {
      cursor_ = ReadyCursor{};  // they are ready again wherever they were
      counters_.redelivered += n;
    }
    return n;
  }

  // The row cache and, for rows in transit, their dispatch timeouts.
  void cache_put(std::string id, std::optional<sink::Row> row) {
    auto it = row_cache_.find(id);
    if (it != row_cache_.end()) {
      if (it->second.in_transit()) transit_by_due_.erase({*it->second.due_at, it->second.rowid});
      if (!row) {
        row_cache_.erase(it);
        return;
      }
      it->second = std::move(*row);
    } else {
      if (!row) return;
      it = row_cache_.emplace(std::move(id), std::move(*row)).first;
    }
    if (it->second.in_transit())
      transit_by_due_.emplace(std::pair{*it->second.due_at, it->second.rowid}, &it->first);
  }

  void refresh_due_hints() {
    auto read_min = [](sqlite::Statement& s) {
      std::int64_t v = kNever;
      if (s.step() && !s.is_null(0)) v = s.column_int(0);
      s.reset();
      return v;
    };
    next_timer_due_ = read_min(next_timer_);
    if (!transit_by_due_.empty())
      next_timer_due_ = std::min(next_timer_due_, transit_by_due_.begin()->first.first);
    // the first ready row after the cursor (possibly one in transit after a cursor reset: the
    // sweep then moves the cursor over it)
    next_ready_at_.bind(1, cursor_.due).bind(2, cursor_.rowid);
    const bool at_cursor = next_ready_at_.step();
    next_ready_at_.reset();
    if (at_cursor) {
      next_ready_due_ = cursor_.due;
    } else {
      next_ready_after_.bind(1, cursor_.due);
      next_ready_due_ = read_min(next_ready_after_);
    }
  }

  void on_committed(Effects& fx, std::int64_t started_us) {
    const auto elapsed_us = steady_us() - started_us;
    for (const auto& [job, delta] : fx.count_delta) {
      auto& c = counts_[job];
      bool moved = false;
      for (std::size_t i = 0; i < 4; ++i) {
        c[i] += delta[i];
        moved = moved || delta[i] != 0;
      }
      if (moved) dirty_jobs_.insert(job);
    }
    taken_in_window_ += fx.taken;
    for (auto& [id, row] : fx.cache) cache_put(std::move(id), std::move(row));
    assert(in_transit() == std::count_if(row_cache_.begin(), row_cache_.end(),
                                         [](const auto& kv) { return kv.second.in_transit(); }));
    cursor_ = fx.cursor;
    counters_.updates += fx.updates;
    counters_.redelivered += fx.redelivered;
    counters_.retried += fx.retried;
    counters_.duplicates += fx.duplicates;
    counters_.stale += fx.stale;
    counters_.bogus += fx.bogus;
    counters_.guard_refused += fx.guard_refused;
    counters_.lease_expired += fx.lease_expired;
    if (fx.updates > 0) {
      ++counters_.batches;
      batch_size_.observe(static_cast<double>(fx.updates));
      commit_seconds_.observe(static_cast<double>(elapsed_us) / 1e6);
    }
    if (new_broker_) broker_instance_ = *std::exchange(new_broker_, std::nullopt);

    // Tasks go out only after their rows are committed: a crash before this line leaves them
    // "in transit" in the database, and the dispatch timeout sends them again.
    const auto per_message = tasks_per_message();
    for (std::size_t i = 0; i < fx.tasks.size(); i += per_message) {
      const auto n = std::min(per_message, fx.tasks.size() - i);
      zmq::message_t msg;
      if (n == 1) {
        msg = zmq::message_t(wire::encode(fx.tasks[i]));
      } else {
        wire::TaskBatch batch;
        batch.tasks.assign(
            std::make_move_iterator(fx.tasks.begin() + static_cast<std::ptrdiff_t>(i)),
            std::make_move_iterator(fx.tasks.begin() + static_cast<std::ptrdiff_t>(i + n)));
        msg = zmq::message_t(wire::encode(batch));
      }
      if (!push_.send(msg, zmq::send_flags::dontwait)) {
        // The window keeps this from happening; if it does, the dispatch timeout recovers it.
        spdlog::warn(
            "broker frontend is full; {} tasks will be redelivered after the dispatch timeout", n);
      }
    }
    counters_.dispatched += fx.tasks.size();
    for (auto& ack : acks_) publish(wire::ack_topic(ack.client), ack);
    for (auto& ack : fx.acks) publish(wire::ack_topic(ack.client), ack);

    if (fx.updates > 0) {
      std::string detail;
      for (std::size_t i = 0; i < 4; ++i) {
        if (fx.written[i] == 0) continue;
        if (!detail.empty()) detail += ", ";
        detail += fmt::format("{} {}", store::kStatusNames[i], fx.written[i]);
      }
      spdlog::info(
          "committed {} updates ({}) in {:.1f} ms{}", fx.updates, detail,
          static_cast<double>(elapsed_us) / 1000.0,
          fx.tasks.empty() ? std::string() : fmt::format("; dispatched {}", fx.tasks.size()));
    }
    if (busy_attempt_ > 0)
      spdlog::info("database available again after {} busy retries", busy_attempt_);
    busy_since_ms_ = 0;
    busy_attempt_ = 0;
    retry_at_ms_ = 0;

    index_.clear();
    for (std::size_t i = 0; i < batch_entries_; ++i) entries_[i].events.clear();
    batch_entries_ = 0;
    origins_.clear();
    acks_.clear();
    requeues_.clear();
    batch_events_ = 0;
    batch_takes_ = 0;
    batch_started_ms_ = -1;
    refresh_due_hints();
    publish_dirty(false);
  }

  std::uint64_t live_workers() {
    const auto cutoff = steady_ms() - cfg_.lease_ms;
    std::erase_if(workers_seen_,
                  [cutoff](const auto& kv) { return kv.second.last_seen_ms < cutoff; });
    return workers_seen_.size();
  }

  // The dispatch window: how many tasks may be handed to the broker and not yet started.
  // ZeroMQ's PUSH cannot see which worker is idle, and a worker connection holds several
  // messages beyond its HWMs (socket buffers, the ZeroMQ engine's read batch), so tasks in
  // transit may sit behind a busy worker's running task. Worse, a burst of more tasks than there
  // are idle connections makes the broker's thread and its I/O thread feed whichever connection
  // drains first, one after another: one worker got 68 of 288 tasks that way. So keep in
  // transit what keeps the workers fed and no more: one task per worker slot (reported in every
  // report), more per slot only when a slot starts tasks faster than that (~100 ms of the
  // observed start rate, so cheap tasks still stream), capped by --dispatch-window. The rate is
  // measured every 100 ms; it rises at once (the window grows geometrically while it limits the
  // rate) and falls smoothly.
  void resize_window() {
    const auto now = steady_ms();
    const auto elapsed = now - rate_window_start_ms_;
    if (elapsed < 100) return;
    const auto rate = static_cast<double>(taken_in_window_) * 1000.0 / static_cast<double>(elapsed);
    taken_rate_ = rate >= taken_rate_ ? rate : 0.5 * taken_rate_ + 0.5 * rate;
    taken_in_window_ = 0;
    rate_window_start_ms_ = now;
    live_workers();
    recompute_window();
  }

  // Tasks per message to the broker: 1 unless tasks are short. A message costs a few
  // microseconds in every process it crosses (the broker's and the worker's poll loops, their
  // socket calls); when one worker slot starts a task every few microseconds (noop, trivial
  // handlers) that cost is most of the work. Tasks then go in messages of about kBatchWorkMs
  // of one slot's work (the observed start rate per slot), at most kMaxTasksPerMessage: what
  // a worker holds beyond its free slots stays a few milliseconds of work.
  [[nodiscard]] std::size_t tasks_per_message() const {
    const double per_slot =
        taken_rate_ / static_cast<double>(std::max<std::uint64_t>(total_slots(), 1));
    const auto n = static_cast<std::int64_t>(per_slot * kBatchWorkMs / 1000.0);
    return static_cast<std::size_t>(std::clamp<std::int64_t>(n, 1, kMaxTasksPerMessage));
  }

  [[nodiscard]] std::uint64_t total_slots() const {
    std::uint64_t slots = 0;
    for (const auto& [id, w] : workers_seen_) slots += std::max<std::uint32_t>(w.slots, 1);
    return slots;
  }

  void recompute_window() {
    const auto slots = total_slots();
    if (slots == 0) {  // no worker heard from yet: a few tasks, so the first ones find the work
      window_ = std::min<std::int64_t>(cfg_.dispatch_window, kWindowWithoutWorkers);
      return;
    }
    const auto target_ms = std::max<std::int64_t>(40, 2 * cfg_.batch_delay_ms);
    const double per_slot = taken_rate_ / static_cast<double>(slots);
    const auto queued = std::max<std::int64_t>(
        1, static_cast<std::int64_t>(per_slot * static_cast<double>(target_ms) / 1000.0));
    window_ = std::min(cfg_.dispatch_window, static_cast<std::int64_t>(slots) * queued);
  }

  // ---- metrics -------------------------------------------------------------------------------

  struct Snapshot {
    SinkCounters counters;
    std::map<std::string, Counts> counts;
    std::int64_t in_transit = 0;
    std::size_t buffered = 0;
    std::uint64_t workers = 0;
    std::int64_t busy_since_ms = 0;
  };

  void publish_snapshot() {
    Snapshot snap{counters_, counts_, in_transit(), batch_events_, live_workers(), busy_since_ms_};
    std::lock_guard lock(snapshot_mutex_);
    snapshot_ = std::move(snap);
    last_snapshot_ms_ = steady_ms();
  }

  std::string render_metrics() {
    Snapshot s;
    {
      std::lock_guard lock(snapshot_mutex_);
      s = snapshot_;
    }
    MetricsText m;
    const auto& c = s.counters;
    m.counter("sink_messages_received_total", "Messages received on the sink socket.",
              static_cast<double>(c.messages));
    m.counter("sink_updates_committed_total", "Row writes committed (status changes).",
              static_cast<double>(c.updates));
    m.counter("sink_batches_committed_total", "Transactions committed.",
              static_cast<double>(c.batches));
    m.counter("sink_busy_retries_total", "Commits retried because the database was busy.",
              static_cast<double>(c.busy_retries));
    m.counter("sink_decode_errors_total", "Bad messages dropped (undecodable or wrong type).",
              static_cast<double>(c.decode_errors));
    m.counter("sink_tasks_dispatched_total", "Tasks sent to the broker.",
              static_cast<double>(c.dispatched));
    m.counter("sink_tasks_redelivered_total", "Tasks sent again (expired lease, lost in transit).",
              static_cast<double>(c.redelivered));
    m.counter("sink_tasks_retried_total", "Retryable failures scheduled for another attempt.",
              static_cast<double>(c.retried));
    m.counter("sink_leases_expired_total", "Running tasks whose lease expired.",
              static_cast<double>(c.lease_expired));
    m.counter("sink_duplicate_deliveries_total", "Deliveries found to be duplicates.",
              static_cast<double>(c.duplicates));
    // curve_ is set before the metrics server starts and never changes; denied() is atomic.
    m.counter("sink_curve_refused_total", "CURVE clients refused: key not in --curve-authorized.",
              curve_ ? static_cast<double>(curve_->denied()) : 0.0);
    m.counter("sink_stale_updates_total",
              "Late updates of superseded attempts or finished topics, ignored.",
              static_cast<double>(c.stale));
    m.counter("sink_bogus_updates_total",
              "Updates for unknown topics or attempts never handed out, ignored.",
              static_cast<double>(c.bogus));
    std::vector<std::pair<std::string, double>> samples;
    std::uint64_t completed = 0, failed = 0;
    for (const auto& [job, counts] : s.counts) {
      for (std::size_t i = 0; i < 4; ++i) {
        samples.emplace_back(
            fmt::format("job=\"{}\",status=\"{}\"", label_value(job), store::kStatusNames[i]),
            static_cast<double>(counts[i]));
      }
      completed += static_cast<std::uint64_t>(counts[2]);
      failed += static_cast<std::uint64_t>(counts[3]);
    }
    m.gauge_family("topics", "Topics by job and status.", samples);
    m.gauge("sink_tasks_in_transit", "Tasks handed to the broker and not yet started.",
            static_cast<double>(s.in_transit));
    m.gauge("sink_buffered_updates", "Updates buffered and not yet committed (queue depth).",
            static_cast<double>(s.buffered));
    m.gauge("sink_workers", "Workers heard from within one lease.", static_cast<double>(s.workers));
    batch_size_.render(m, "sink_batch_size", "Row writes per committed transaction.");
    commit_seconds_.render(m, "sink_commit_seconds", "Time to apply and commit one batch.");
    return m.str();
  }

  std::string health() {
    std::lock_guard lock(snapshot_mutex_);
    if (snapshot_.busy_since_ms > 0 && steady_ms() - snapshot_.busy_since_ms > 30000) {
      return fmt::format("database busy for {} s", (steady_ms() - snapshot_.busy_since_ms) / 1000);
    }
    return {};
  }

  // ---- publishing ----------------------------------------------------------------------------

  template <typename T>
  void publish(const std::string& topic, const T& body) {
    zmq::message_t head(topic.data(), topic.size());
    zmq::message_t payload(wire::encode(body));
    // PUB never blocks; a slow subscriber loses events and recovers them by repeating hello.
    if (pub_.send(head, zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      (void)pub_.send(payload, zmq::send_flags::dontwait);
    }
  }

  void publish_progress(const std::string& job) {
    wire::Progress p;
    p.job = job;
    if (auto it = counts_.find(job); it != counts_.end()) {
      p.pending = static_cast<std::uint64_t>(std::max<std::int64_t>(it->second[0], 0));
      p.running = static_cast<std::uint64_t>(std::max<std::int64_t>(it->second[1], 0));
      p.completed = static_cast<std::uint64_t>(std::max<std::int64_t>(it->second[2], 0));
      p.failed = static_cast<std::uint64_t>(std::max<std::int64_t>(it->second[3], 0));
    }
    p.batches = counters_.batches;
    p.updates = counters_.updates;
    p.busy_retries = counters_.busy_retries;
    p.retried = counters_.retried;
    p.redelivered = counters_.redelivered;
    p.duplicates = counters_.duplicates;
    p.decode_errors = counters_.decode_errors;
    p.time_ms = now_ms();
    p.workers = live_workers();
    publish(wire::progress_topic(job), p);
    last_published_[job] = steady_ms();
  }

  void publish_dirty(bool force) {
    const auto now = steady_ms();
    for (auto it = dirty_jobs_.begin(); it != dirty_jobs_.end();) {
      const auto& c = counts_[*it];
      const bool done = c[0] + c[1] == 0;
      const auto last = last_published_.count(*it) ? last_published_[*it] : -kProgressIntervalMs;
      if (force || done || now - last >= kProgressIntervalMs) {
        publish_progress(*it);
        it = dirty_jobs_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void periodic() {
    publish_dirty(false);
    resize_window();
    const auto now = steady_ms();
    if (metrics_ && now - last_snapshot_ms_ >= 500) publish_snapshot();
    if (now - stats_window_start_ >= cfg_.stats_interval_ms) {
      const auto seconds = static_cast<double>(now - stats_window_start_) / 1000.0;
      const auto updates = counters_.updates - stats_updates_;
      if (updates > 0 || counters_.decode_errors != stats_decode_errors_) {
        spdlog::info(
            "rate: {:.0f} updates/s over {:.0f} s; {} batches, {} dispatched, {} redelivered, "
            "{} retried, {} busy retries, {} bad messages in total; {} unfinished, {} in transit",
            static_cast<double>(updates) / seconds, seconds, counters_.batches,
            counters_.dispatched, counters_.redelivered, counters_.retried, counters_.busy_retries,
            counters_.decode_errors, unfinished(), in_transit());
      }
      stats_window_start_ = now;
      stats_updates_ = counters_.updates;
      stats_decode_errors_ = counters_.decode_errors;
    }
  }

  void shutdown() {
    spdlog::info("stopping: committing {} buffered updates", batch_events_);
    // Take what is already queued, then commit; bounded even if the database stays busy.
    drain();
    const auto give_up = steady_ms() + kShutdownBusyBudgetMs;
    while (has_batch()) {
      if (try_commit()) break;
      if (steady_ms() >= give_up) {
        spdlog::error(
            "database still busy after {} ms; {} updates not committed (their topics are "
            "redelivered when their leases expire)",
            kShutdownBusyBudgetMs, batch_events_);
        break;
      }
      std::this_thread::sleep_for(
          std::chrono::milliseconds(std::max<std::int64_t>(retry_at_ms_ - steady_ms(), 1)));
    }
    publish_dirty(true);
    spdlog::info("sink stopped: {} updates in {} batches, {} busy retries, {} bad messages",
                 counters_.updates, counters_.batches, counters_.busy_retries,
                 counters_.decode_errors);
  }

  SinkConfig cfg_;
  sink::Policy policy_;
  wire::Limits limits_;
  std::unique_ptr<zmq::context_t> own_context_;
  zmq::context_t* context_;
  std::optional<CurveServer> curve_;  // with CURVE on: admits clients; destroyed before the context
  sqlite::Database db_;
  sqlite::Statement select_row_;
  sqlite::Statement insert_row_;
  sqlite::Statement update_row_;
  sqlite::Statement run_row_;
  sqlite::Statement complete_row_;
  sqlite::Statement sweep_timers_;
  sqlite::Statement ready_at_;
  sqlite::Statement ready_after_;
  sqlite::Statement next_timer_;
  sqlite::Statement next_ready_at_;
  sqlite::Statement next_ready_after_;
  sqlite::Statement requeue_job_;
  sqlite::Statement set_meta_;
  zmq::socket_t pull_;
  zmq::socket_t pub_;
  zmq::socket_t push_;
  Backoff retry_backoff_;
  Backoff busy_backoff_;

  // committed state of the rows in flight (see cacheable()); for rows in transit, the state
  // the database does not have (the attempt handed out)
  std::unordered_map<std::string, sink::Row> row_cache_;
  // the rows in transit by (dispatch timeout, rowid): their keys in row_cache_ (an
  // unordered_map's keys never move; cache_put and forget_transit erase both together)
  std::map<std::pair<std::int64_t, std::int64_t>, const std::string*> transit_by_due_;
  ReadyCursor cursor_;
  std::vector<sink::Outcome> outcomes_;

  // the batch: entries_[0, batch_entries_) in arrival order, indexed by id (views of Entry::id:
  // a deque, so entries never move). The entries after them were used by earlier batches and
  // are kept with their allocations (the id's buffer, the events' array), so an entry costs no
  // allocation of its own once a batch as large has been seen; there are at most about
  // --buffer-max of them.
  std::unordered_map<std::string_view, std::size_t> index_;
  std::deque<Entry> entries_;
  std::size_t batch_entries_ = 0;
  std::string id_scratch_;
  // The submission and worker ids the batch's events view (sink::Event::origin): one copy per
  // message, not per event. A deque, so they never move.
  std::deque<std::string> origins_;
  std::vector<wire::Ack> acks_;
  std::vector<RequeueRequest> requeues_;
  std::optional<std::string> new_broker_;
  std::size_t batch_events_ = 0;
  std::size_t batch_takes_ = 0;  // entries with Entry::takes
  std::int64_t batch_started_ms_ = -1;

  // scheduling
  std::int64_t next_timer_due_ = kNever;
  std::int64_t next_ready_due_ = kNever;
  std::string broker_instance_;
  unsigned busy_attempt_ = 0;
  std::int64_t retry_at_ms_ = 0;

  // progress
  std::map<std::string, Counts> counts_;
  std::set<std::string> dirty_jobs_;
  std::unordered_map<std::string, std::int64_t> last_published_;

  std::unordered_map<std::string, SeenWorker> workers_seen_;
  std::int64_t window_ = 8;
  std::uint64_t taken_in_window_ = 0;
  double taken_rate_ = 0.0;
  std::int64_t rate_window_start_ms_ = 0;
  std::int64_t busy_since_ms_ = 0;
  Histogram batch_size_{{1, 10, 100, 500, 1000, 5000, 10000}};
  Histogram commit_seconds_{{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0}};
  std::mutex snapshot_mutex_;
  Snapshot snapshot_;
  std::int64_t last_snapshot_ms_ = 0;
  std::unique_ptr<MetricsServer> metrics_;  // after what it reads: destroyed (stops serving) first
  SinkCounters counters_;
  RateLimitedLog bad_messages_;
  std::int64_t stats_window_start_ = 0;
  std::uint64_t stats_updates_ = 0;
  std::uint64_t stats_decode_errors_ = 0;
};

Sink::Sink(SinkConfig config, zmq::context_t* context)
    : impl_(std::make_unique<Impl>(std::move(config), context)) {}
Sink::~Sink() = default;
void Sink::run(const StopSignal& stop) { impl_->run(stop); }
SinkCounters Sink::counters() const { return impl_->counters(); }
std::string Sink::sink_endpoint() const { return impl_->sink_endpoint(); }
std::string Sink::events_endpoint() const { return impl_->events_endpoint(); }
int Sink::metrics_port() const { return impl_->metrics_port(); }

}  // namespace topicflow
