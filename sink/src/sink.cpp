// The sink's loop and the orchestration of one commit. The work is done by units with one job
// each (docs/ARCHITECTURE.md has the code map):
//   batch.hpp           what arrived since the last commit, coalesced per topic
//   topic_table.hpp     the row SQL (read a row, write a row under the guard)
//   rows_in_flight.hpp  rows in transit and running, kept in memory
//   dispatch_window.hpp how many tasks may be in transit, and per message
//   job_progress.hpp    counts per job and status; which progress events are due
//   sink_metrics.hpp    counters and the snapshot /metrics renders
//   state.cpp           the state machine of one row (sink_state.hpp)
#include <topicflow/sink.hpp>

#include "batch.hpp"
#include "dispatch_window.hpp"
#include "effects.hpp"
#include "job_progress.hpp"
#include "row_id.hpp"
#include "rows_in_flight.hpp"
#include "sink_metrics.hpp"
#include "topic_table.hpp"

#include <topicflow/clock.hpp>
#include <topicflow/log.hpp>
#include <topicflow/metrics.hpp>
#include <topicflow/sink_state.hpp>
#include <topicflow/sockets.hpp>
#include <topicflow/sqlite.hpp>
#include <topicflow/store.hpp>

#include <algorithm>
#include <array>
#include <cassert>
#include <limits>
#include <thread>

namespace topicflow {
namespace {

using sink::Row;
using store::Status;
using Write = sink::TopicTable::Write;
constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kTimerSweepLimit = 1000;
constexpr std::int64_t kShutdownBusyBudgetMs = 10000;
constexpr std::int64_t kSnapshotIntervalMs = 500;

// Where the ready sweep goes on: every ready row (pending, not handed out) that is not in
// transit lies after it in (due_at, rowid) order. The sweep moves it over the rows it reads;
// a write that makes a row ready behind it moves it back (see CommitFx::ready_from).
struct ReadyCursor {
  std::int64_t due = std::numeric_limits<std::int64_t>::min();
  std::int64_t rowid = std::numeric_limits<std::int64_t>::min();
  [[nodiscard]] bool before(std::int64_t d, std::int64_t r) const noexcept {
    return due < d || (due == d && rowid < r);
  }
};

struct CommitFx : sink::Effects {
  ReadyCursor cursor;  // the ready cursor as this commit leaves it
  // Rows this commit gave back from transit to ready (released, retried at once): the rows in
  // flight still say "in transit" until COMMIT, and the ready sweep must not skip them.
  std::vector<std::int64_t> ready_again;

  // A row is ready at (due, rowid): the sweep must still reach it.
  void ready_from(std::int64_t due, std::int64_t rowid) {
    if (!cursor.before(due, rowid)) cursor = ReadyCursor{due, rowid - 1};
  }
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

void count_ack(wire::Ack& ack, sink::Outcome outcome) {
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

}  // namespace

class Sink::Impl {
 public:
  Impl(SinkConfig cfg, zmq::context_t* context)
      : cfg_(std::move(cfg)),
        policy_{cfg_.lease_ms, cfg_.max_attempts, cfg_.dispatch_timeout_ms},
        own_context_(context == nullptr ? std::make_unique<zmq::context_t>(1) : nullptr),
        context_(context == nullptr ? own_context_.get() : context),
        db_(store::open_for_writing(cfg_.db)),
        table_(db_),
        sweep_timers_(db_,
                      "SELECT job, key, payload, status, attempts, dispatched_at, error, "
                      "submission, worker, rowid FROM topics WHERE (status = 'running' OR "
                      "dispatched_at IS NOT NULL) AND due_at <= ?1 ORDER BY due_at LIMIT ?2"),
        // Ready rows after the ready cursor, in (due_at, rowid) order, read lazily (no LIMIT:
        // the index order is the ORDER BY, so stepping stops where the window's room ends): the
        // rest of the cursor's due time by rowid, then the later due times up to now. Two
        // statements because SQLite seeks a partial index by (due_at = ? AND rowid > ?) but not
        // by the row value (due_at, rowid) > (?, ?).
        ready_at_(db_,
                  "SELECT rowid, due_at, job, key, payload, attempts, error, submission, worker "
                  "FROM topics WHERE status = 'pending' AND dispatched_at IS NULL AND "
                  "due_at = ?1 AND rowid > ?2 ORDER BY rowid"),
        ready_after_(db_,
                     "SELECT rowid, due_at, job, key, payload, attempts, error, submission, "
                     "worker FROM topics WHERE status = 'pending' AND dispatched_at IS NULL AND "
                     "due_at > ?1 AND due_at <= ?2 ORDER BY due_at, rowid"),
        next_timer_(db_,
                    "SELECT min(due_at) FROM topics WHERE status = 'running' OR "
                    "dispatched_at IS NOT NULL"),
        next_ready_at_(db_,
                       "SELECT 1 FROM topics WHERE status = 'pending' AND dispatched_at IS NULL "
                       "AND due_at = ?1 AND rowid > ?2 LIMIT 1"),
        next_ready_after_(db_,
                          "SELECT due_at FROM topics WHERE status = 'pending' AND "
                          "dispatched_at IS NULL AND due_at > ?1 ORDER BY due_at LIMIT 1"),
        pull_(make_socket(*context_, zmq::socket_type::pull, {.sndhwm = 1000, .rcvhwm = 10000})),
        pub_(make_socket(*context_, zmq::socket_type::pub, {.sndhwm = 100000, .rcvhwm = 1000})),
        push_(make_socket(
            *context_, zmq::socket_type::push,
            {.sndhwm = static_cast<int>(std::max<std::int64_t>(cfg_.dispatch_window * 2, 1000)),
             .rcvhwm = 1000})),
        window_(cfg_.dispatch_window, cfg_.batch_delay_ms, cfg_.lease_ms),
        retry_backoff_(cfg_.retry_base_ms, cfg_.retry_max_ms),
        busy_backoff_(cfg_.busy_base_ms, cfg_.busy_max_ms) {
    db_.busy_timeout(0);  // busy handling is ours: keep the batch, back off with jitter, log
    load_state();
    if (cfg_.security.enabled()) curve_.emplace(*context_, cfg_.security);
    const CurveServer* curve = curve_ ? &*curve_ : nullptr;
    bind_socket(pull_, "--sink", cfg_.endpoints.sink, curve);
    bind_socket(pub_, "--events", cfg_.endpoints.events, curve);
    connect_socket(push_, "--frontend", cfg_.endpoints.frontend, cfg_.security);
    spdlog::info("sink ready: db {} ({} jobs, {} unfinished topics), PULL {}, PUB {}, tasks to {}",
                 cfg_.db, progress_.counts().size(), progress_.unfinished(), endpoint(pull_),
                 endpoint(pub_), cfg_.endpoints.frontend);
    spdlog::info(
        "batching: up to {} updates or {} ms; lease {} ms; max attempts {}; retry backoff "
        "{}..{} ms; dispatch window {}, timeout {} ms",
        cfg_.batch_max, cfg_.batch_delay_ms, cfg_.lease_ms, cfg_.max_attempts, cfg_.retry_base_ms,
        cfg_.retry_max_ms, cfg_.dispatch_window, cfg_.dispatch_timeout_ms);
    publish_snapshot();
    if (cfg_.metrics_port > 0) start_metrics(cfg_.metrics_port);
  }

  void run(const StopSignal& stop) {
    stats_window_start_ = steady_ms();
    while (!stop.triggered()) {
      const auto now = steady_ms();
      std::array<zmq::pollitem_t, 2> items{
          {{nullptr, stop.fd(), ZMQ_POLLIN, 0}, {pull_.handle(), 0, ZMQ_POLLIN, 0}}};
      const bool can_read = batch_.events() < static_cast<std::size_t>(cfg_.buffer_max);
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
  int metrics_port() const { return metrics_ ? metrics_->port() : 0; }

 private:
  // ---- startup -------------------------------------------------------------------------------

  void load_state() {
    for (const auto& jc : store::read_counts(db_)) {
      store::StatusCounts c;
      for (const auto status : store::kStatuses) {
        c[status] = static_cast<std::int64_t>(jc.count(status));
      }
      progress_.set(jc.job, c);
    }
    broker_instance_ = table_.meta("broker_instance").value_or("");
    refresh_due_hints();
  }

  void start_metrics(int port) {
    metrics_ = std::make_unique<MetricsServer>(
        cfg_.metrics_address, port, [this] { return sink::render_metrics(snapshot_.read()); },
        [this] { return sink::health(snapshot_.read(), steady_ms()); });
    spdlog::info("metrics on http://{}:{}/metrics, health on /healthz", cfg_.metrics_address,
                 metrics_->port());
  }

  // ---- receiving: messages become batch events ----------------------------------------------

  void drain() {
    const auto buffer_max = static_cast<std::size_t>(cfg_.buffer_max);
    for (std::size_t i = 0; i < 4096 && batch_.events() < buffer_max; ++i) {
      auto msg = try_recv(pull_);
      if (!msg) break;
      handle(*msg);
      if (batch_.events() >= static_cast<std::size_t>(cfg_.batch_max)) break;
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
    const auto ack = batch_.add_ack(
        wire::Ack{.client = m.submission, .kind = wire::AckKind::submit, .seq = m.seq});
    batch_.touch(steady_ms());
    if (m.items.empty()) return;
    const std::string_view origin = batch_.keep_origin(std::move(m.submission));
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
    if (!m.worker.empty()) window_.heard_from(m.worker, m.slots, steady_ms());
    if (m.updates.empty()) return;
    const std::string_view origin = batch_.keep_origin(std::move(m.worker));
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
    batch_.add_request(sink::JobRequest{sink::JobRequest::Kind::requeue_failed, m.job, m.client});
    batch_.touch(steady_ms());
  }

  void on_message(const wire::BrokerHello& m) {
    if (m.instance == broker_instance_ || batch_.new_broker() == m.instance) return;
    if (broker_instance_.empty()) {
      spdlog::info("broker instance {} announced itself", m.instance);
    } else {
      spdlog::info("broker instance {} announced itself (was {}): redelivering tasks in transit",
                   m.instance, broker_instance_);
    }
    batch_.set_new_broker(m.instance);
    batch_.touch(steady_ms());
  }

  template <typename T>
  void on_message(const T& /*unexpected*/) {
    ++counters_.decode_errors;
    bad_messages_.warn(
        fmt::format("dropped a message of type {} that does not belong on the sink socket",
                    wire::type_name(wire::Message(T{}))));
  }

  void add_event(std::string_view job, std::string_view key, sink::Event event) {
    const auto kind = event.kind;
    auto& entry = batch_.add(job, key, std::move(event));
    if (!entry.takes && kind != sink::EventKind::submit && kind != sink::EventKind::heartbeat) {
      // Only a hint for when to commit (the state machine decides what the event does).
      if (const auto* cached = rows_.find(entry.id); cached != nullptr && cached->in_transit()) {
        batch_.mark_takes(entry);
      }
    }
    batch_.touch(steady_ms());
  }

  // ---- when to commit ------------------------------------------------------------------------

  [[nodiscard]] std::int64_t budget() const {
    return std::max<std::int64_t>(window_.size() - rows_.in_transit(), 0);
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
    return budget() + static_cast<std::int64_t>(batch_.takes()) >=
           std::max<std::int64_t>(1, window_.size() / 4);
  }

  std::int64_t poll_timeout(std::int64_t now) const {
    std::int64_t deadline = now + 250;
    if (retry_at_ms_ > 0) {
      deadline = std::min(deadline, retry_at_ms_);
    } else {
      if (batch_.started_ms() >= 0) {
        deadline = std::min(deadline, batch_.started_ms() + cfg_.batch_delay_ms);
      }
      const auto wall = now_ms();
      auto next_due = next_timer_due_;
      // (only when that would commit: with less room, waking for ready rows only spins)
      if (room_for_ready()) next_due = std::min(next_due, next_ready_due_);
      if (next_due != kNever) {
        deadline = std::min(deadline, now + std::max<std::int64_t>(next_due - wall, 0));
      }
    }
    if (progress_.has_dirty()) deadline = std::min(deadline, now + sink::JobProgress::kIntervalMs);
    return std::max<std::int64_t>(deadline - now, 0);
  }

  void maybe_commit() {
    const auto now = steady_ms();
    if (retry_at_ms_ > 0 && now < retry_at_ms_) return;  // backing off a busy database
    const bool full = batch_.events() >= static_cast<std::size_t>(cfg_.batch_max);
    const bool old = batch_.started_ms() >= 0 && now - batch_.started_ms() >= cfg_.batch_delay_ms;
    if (full || old || retry_at_ms_ > 0 || sweep_due(now_ms())) try_commit();
  }

  // ---- one commit ----------------------------------------------------------------------------

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
    if (batch_.new_broker() && !broker_instance_.empty()) {
      if (const auto n = forget_transit(kNever); n > 0) {
        spdlog::warn("broker restarted: {} tasks in transit are redelivered", n);
      }
    }
    CommitFx fx;
    fx.cursor = cursor_;
    try {
      sqlite::Transaction tx(db_);
      if (batch_.new_broker()) table_.set_meta("broker_instance", *batch_.new_broker());
      for (std::size_t i = 0; i < batch_.entry_count(); ++i) apply_entry(batch_.entry(i), wall, fx);
      for (const auto& rq : batch_.requests()) apply_request(rq, wall, fx);
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
    const auto delay = std::max<std::int64_t>(busy_backoff_.delay(std::min(busy_attempt_, 20U)), 1);
    ++busy_attempt_;
    if (busy_since_ms_ == 0) busy_since_ms_ = steady_ms();
    retry_at_ms_ = steady_ms() + delay;
    spdlog::warn("database busy ({}); keeping {} updates, retry {} in {} ms", e.what(),
                 batch_.events(), busy_attempt_, delay);
  }

  // Writes a row's new state and counts it; a write that makes a row ready tells the sweep.
  Write write_row(std::string_view job, std::string_view key, const Row& before, Row& row,
                  std::int64_t wall, CommitFx& fx) {
    const auto written = table_.write(job, key, before, row, wall);
    if (written == Write::exists) return written;
    if (written == Write::refused) {
      ++fx.guard_refused;
      spdlog::error("internal: the SQL guard refused an update of {}/{} to {} (attempt {})", job,
                    key, store::to_string(row.status), row.attempts);
      return written;
    }
    ++fx.updates;
    ++fx.written[static_cast<std::size_t>(row.status)];
    if (row.status == Status::pending && row.due_at) {  // ready: the sweep must reach it
      fx.ready_from(*row.due_at, row.rowid);
      if (before.in_transit()) fx.ready_again.push_back(row.rowid);
    }
    return written;
  }

  static void stage_cache(sink::Effects& fx, std::string id, Write written, Row row) {
    if (written == Write::written && sink::RowsInFlight::cacheable(row)) {
      row.new_payload.reset();
      row.new_result.reset();
      row.changed = false;
      row.requeued = false;
      fx.cache.emplace_back(std::move(id), std::move(row));
    } else {
      fx.cache.emplace_back(std::move(id), std::nullopt);
    }
  }

  static void account(std::string_view job, const Row& before, const Row& after,
                      sink::Effects& fx) {
    auto& delta = fx.delta(job);
    if (before.exists) --delta[before.status];
    if (after.exists) ++delta[after.status];
    fx.in_transit_delta += static_cast<std::int64_t>(after.in_transit()) -
                           static_cast<std::int64_t>(before.in_transit());
    if (before.in_transit() && after.exists && after.status != Status::pending) ++fx.taken;
  }

  void apply_entry(sink::Entry& entry, std::int64_t wall, CommitFx& fx) {
    if (const auto* cached = rows_.find(entry.id); cached != nullptr) {
      (void)apply_events(entry, *cached, true, wall, fx);
      return;
    }
    // A registration is INSERTed first: a new topic needs no SELECT. Only if the row exists
    // after all (a resubmission) is it read and the events applied to what is there.
    if (entry.events.front().kind == sink::EventKind::submit &&
        apply_events(entry, Row{}, false, wall, fx)) {
      return;
    }
    const bool applied =
        apply_events(entry, table_.load(entry.job(), entry.key()), false, wall, fx);
    assert(applied);
    (void)applied;
  }

  // Applies an entry's events to `before` (`cached`: from the rows in flight) and writes the
  // result. Returns false, with no effect at all, when `before` said "no row" but the INSERT
  // found one.
  bool apply_events(sink::Entry& entry, const Row& before, bool cached, std::int64_t wall,
                    CommitFx& fx) {
    Row row = before;
    outcomes_.clear();
    for (const auto& event : entry.events) {
      outcomes_.push_back(sink::apply(row, event, policy_, retry_backoff_, wall));
    }
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
      if (event.ack >= 0)
        count_ack(batch_.acks()[static_cast<std::size_t>(event.ack)], outcomes_[i]);
    }
    account(entry.job(), before, row, fx);
    // (a row neither cached before nor after needs no cache change: an entry's row is staged
    // first in its commit, so nothing before it in fx.cache could have put it there)
    if (row.changed &&
        (cached || (written == Write::written && sink::RowsInFlight::cacheable(row)))) {
      stage_cache(fx, entry.id, written, std::move(row));
    }
    return true;
  }

  void apply_request(const sink::JobRequest& rq, std::int64_t wall, CommitFx& fx) {
    const auto n = table_.requeue_failed(rq.job, wall);
    auto& delta = fx.delta(rq.job);
    delta[Status::failed] -= n;
    delta[Status::pending] += n;
    fx.updates += static_cast<std::uint64_t>(n);
    fx.written[static_cast<std::size_t>(Status::pending)] += static_cast<std::uint64_t>(n);
    fx.acks.push_back(wire::Ack{.client = rq.client,
                                .kind = wire::AckKind::requeue,
                                .requeued = static_cast<std::uint64_t>(n)});
    if (n > 0) fx.cursor = ReadyCursor{};  // ready again anywhere in (due_at, rowid) order
    if (n > 0) spdlog::info("requeued {} failed topics of job {}", n, rq.job);
  }

  // ---- the scheduler's sweep (inside the commit) ---------------------------------------------

  struct DueRow {
    std::string job;
    std::string key;
    Row row;
  };

  std::vector<DueRow> collect(sqlite::Statement& select, std::int64_t wall, std::int64_t limit) {
    std::vector<DueRow> rows;
    if (limit <= 0) return rows;
    select.bind(1, wall).bind(2, limit);
    while (select.step()) {
      DueRow d;
      d.job = std::string(select.column_text(0));
      d.key = std::string(select.column_text(1));
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
  void sweep(std::int64_t wall, CommitFx& fx) {
    auto timers = collect(sweep_timers_, wall, kTimerSweepLimit);
    for (auto& d : timers) {
      const Row before = d.row;
      const auto r = sink::on_due(d.row, policy_, wall);
      if (!d.row.changed) continue;
      assert(!r.dispatch);
      const auto written = write_row(d.job, d.key, before, d.row, wall, fx);
      account(d.job, before, d.row, fx);
      stage_cache(fx, sink::row_id(d.job, d.key), written, std::move(d.row));
      if (r.lease_expired) ++fx.lease_expired;
      if (r.redelivery) ++fx.redelivered;
    }
    dispatch_ready(wall, window_.size() - (rows_.in_transit() + fx.in_transit_delta), fx);
  }

  // Hands the next attempt of ready rows to the broker, oldest due first (registration order
  // for first attempts), without writing them: the row keeps its previous attempt, and the new
  // one (sink::on_due: attempts + 1, in transit until the dispatch timeout) lives in the rows
  // in flight until the attempt's first report writes it. A sink that dies meanwhile leaves the
  // row ready, so the next one sends the same attempt again, as for a task lost in transit, and
  // still accepts the first one's reports (sink::apply adopts attempt + 1 of a ready row).
  void dispatch_ready(std::int64_t wall, std::int64_t room, CommitFx& fx) {
    if (room <= 0) return;
    auto take = [&](sqlite::Statement& q) {
      while (room > 0 && q.step()) {
        const auto rowid = q.column_int(0);
        const auto due = q.column_int(1);
        fx.cursor = ReadyCursor{due, rowid};
        const auto job = q.column_text(2);
        const auto key = q.column_text(3);
        auto id = sink::row_id(job, key);
        // Already in transit (sent before a cursor reset): not again. Unless this commit gave
        // it back (its cache entry changes only at COMMIT).
        if (const auto* cached = rows_.find(id);
            cached != nullptr && cached->in_transit() &&
            std::find(fx.ready_again.begin(), fx.ready_again.end(), rowid) ==
                fx.ready_again.end()) {
          continue;
        }
        Row row;
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
  // the broker restarted). Their rows are ready in the database, so the ready sweep sends them
  // again with the same attempt.
  std::size_t forget_transit(std::int64_t until) {
    const auto n = rows_.forget_transit(until);
    if (n > 0) {
      cursor_ = ReadyCursor{};  // they are ready again wherever they were
      counters_.redelivered += n;
    }
    return n;
  }

  void refresh_due_hints() {
    auto read_min = [](sqlite::Statement& s) {
      std::int64_t v = kNever;
      if (s.step() && !s.is_null(0)) v = s.column_int(0);
      s.reset();
      return v;
    };
    next_timer_due_ = read_min(next_timer_);
    if (const auto due = rows_.next_transit_due())
      next_timer_due_ = std::min(next_timer_due_, *due);
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

  // ---- after COMMIT --------------------------------------------------------------------------

  void on_committed(CommitFx& fx, std::int64_t started_us) {
    const auto elapsed_us = steady_us() - started_us;
    progress_.add(fx.count_delta);
    window_.taken(fx.taken);
    for (auto& [id, row] : fx.cache) rows_.put(std::move(id), std::move(row));
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
      snapshot_state_.batch_size.observe(static_cast<double>(fx.updates));
      snapshot_state_.commit_seconds.observe(static_cast<double>(elapsed_us) / 1e6);
    }
    if (batch_.new_broker()) broker_instance_ = *batch_.new_broker();

    send_tasks(fx.tasks);
    for (auto& ack : batch_.acks()) publish(wire::ack_topic(ack.client), ack);
    for (auto& ack : fx.acks) publish(wire::ack_topic(ack.client), ack);
    log_commit(fx, elapsed_us);
    if (busy_attempt_ > 0) {
      spdlog::info("database available again after {} busy retries", busy_attempt_);
    }
    busy_since_ms_ = 0;
    busy_attempt_ = 0;
    retry_at_ms_ = 0;
    batch_.clear();
    refresh_due_hints();
    publish_dirty(false);
    publish_snapshot();
  }

  // Tasks go out only after their commit: a sink that dies before leaves their rows ready, and
  // the next one sends them.
  void send_tasks(std::vector<wire::Task>& tasks) {
    const auto per_message = window_.tasks_per_message();
    for (std::size_t i = 0; i < tasks.size(); i += per_message) {
      const auto n = std::min(per_message, tasks.size() - i);
      zmq::message_t msg;
      if (n == 1) {
        msg = zmq::message_t(wire::encode(tasks[i]));
      } else {
        wire::TaskBatch batch;
        const auto first = tasks.begin() + static_cast<std::ptrdiff_t>(i);
        batch.tasks.assign(std::make_move_iterator(first),
                           std::make_move_iterator(first + static_cast<std::ptrdiff_t>(n)));
        msg = zmq::message_t(wire::encode(batch));
      }
      if (!push_.send(msg, zmq::send_flags::dontwait)) {
        // The window keeps this from happening; if it does, the dispatch timeout recovers it.
        spdlog::warn(
            "broker frontend is full; {} tasks will be redelivered after the dispatch timeout", n);
      }
    }
    counters_.dispatched += tasks.size();
  }

  void log_commit(const sink::Effects& fx, std::int64_t elapsed_us) const {
    if (fx.updates == 0) return;
    std::string detail;
    for (const auto status : store::kStatuses) {
      const auto n = fx.written[static_cast<std::size_t>(status)];
      if (n == 0) continue;
      if (!detail.empty()) detail += ", ";
      detail += fmt::format("{} {}", store::to_string(status), n);
    }
    spdlog::info(
        "committed {} updates ({}) in {:.1f} ms{}", fx.updates, detail,
        static_cast<double>(elapsed_us) / 1000.0,
        fx.tasks.empty() ? std::string() : fmt::format("; dispatched {}", fx.tasks.size()));
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
    publish(wire::progress_topic(job),
            progress_.progress(job, counters_, now_ms(), window_.workers()));
    progress_.published(job, steady_ms());
  }

  void publish_dirty(bool force) {
    for (const auto& job : progress_.take_due(steady_ms(), force)) {
      publish(wire::progress_topic(job),
              progress_.progress(job, counters_, now_ms(), window_.workers()));
    }
  }

  void publish_snapshot() {
    auto& s = snapshot_state_;
    s.counters = counters_;
    s.counts = progress_.counts();
    s.in_transit = rows_.in_transit();
    s.buffered = batch_.events();
    s.workers = window_.workers();
    s.curve_refused = curve_ ? curve_->denied() : 0;
    s.unavailable_since_ms = busy_since_ms_;
    if (metrics_ || !snapshot_published_) {
      snapshot_.publish(s);
      snapshot_published_ = true;
    }
    last_snapshot_ms_ = steady_ms();
  }

  // ---- periodic ------------------------------------------------------------------------------

  void periodic() {
    publish_dirty(false);
    const auto now = steady_ms();
    window_.tick(now);
    if (now - last_snapshot_ms_ >= kSnapshotIntervalMs) publish_snapshot();
    if (now - stats_window_start_ >= cfg_.stats_interval_ms) log_rate(now);
  }

  void log_rate(std::int64_t now) {
    const auto seconds = static_cast<double>(now - stats_window_start_) / 1000.0;
    const auto updates = counters_.updates - stats_updates_;
    if (updates > 0 || counters_.decode_errors != stats_decode_errors_) {
      spdlog::info(
          "rate: {:.0f} updates/s over {:.0f} s; {} batches, {} dispatched, {} redelivered, {} "
          "retried, {} busy retries, {} bad messages in total; {} unfinished, {} in transit",
          static_cast<double>(updates) / seconds, seconds, counters_.batches, counters_.dispatched,
          counters_.redelivered, counters_.retried, counters_.busy_retries, counters_.decode_errors,
          progress_.unfinished(), rows_.in_transit());
    }
    stats_window_start_ = now;
    stats_updates_ = counters_.updates;
    stats_decode_errors_ = counters_.decode_errors;
  }

  void shutdown() {
    spdlog::info("stopping: committing {} buffered updates", batch_.events());
    // Take what is already queued, then commit; bounded even if the database stays busy.
    drain();
    const auto give_up = steady_ms() + kShutdownBusyBudgetMs;
    while (!batch_.empty()) {
      if (try_commit()) break;
      if (steady_ms() >= give_up) {
        spdlog::error(
            "database still busy after {} ms; {} updates not committed (their topics are "
            "redelivered when their leases expire)",
            kShutdownBusyBudgetMs, batch_.events());
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
  std::optional<CurveServer> curve_;  // with CURVE on: admits clients; destroyed before context
  sqlite::Database db_;
  sink::TopicTable table_;
  sqlite::Statement sweep_timers_;
  sqlite::Statement ready_at_;
  sqlite::Statement ready_after_;
  sqlite::Statement next_timer_;
  sqlite::Statement next_ready_at_;
  sqlite::Statement next_ready_after_;
  zmq::socket_t pull_;
  zmq::socket_t pub_;
  zmq::socket_t push_;
  sink::DispatchWindow window_;
  Backoff retry_backoff_;
  Backoff busy_backoff_;

  sink::Batch batch_;
  sink::RowsInFlight rows_;
  ReadyCursor cursor_;
  std::vector<sink::Outcome> outcomes_;
  sink::JobProgress progress_;

  // scheduling
  std::int64_t next_timer_due_ = kNever;
  std::int64_t next_ready_due_ = kNever;
  std::string broker_instance_;
  unsigned busy_attempt_ = 0;
  std::int64_t retry_at_ms_ = 0;
  std::int64_t busy_since_ms_ = 0;

  // metrics
  SinkCounters counters_;
  sink::Snapshot snapshot_state_;  // the loop's copy, with its histograms
  sink::SharedSnapshot snapshot_;  // what other threads read
  bool snapshot_published_ = false;
  std::int64_t last_snapshot_ms_ = 0;
  std::unique_ptr<MetricsServer> metrics_;  // after what it reads: destroyed (stops) first
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
