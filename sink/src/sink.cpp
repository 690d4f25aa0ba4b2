// The sink's loop and the orchestration of one commit. The work is done by units with one job
// each (docs/ARCHITECTURE.md has the code map):
//   batch.hpp           what arrived since the last commit, coalesced per topic
//   batch_writer.hpp    one commit's row work: events -> state machine -> one write per row
//   topic_table.hpp     the row SQL (read a row, write a row under the guard)
//   scheduler.hpp       hands ready rows out (ready_queue.hpp), takes back lost tasks
//   rows_in_flight.hpp  rows in transit and running (leases), kept in memory
//   dispatch_window.hpp how many tasks may be in transit, and per message
//   job_progress.hpp    counts per job and status; which progress events are due
//   sink_metrics.hpp    counters and the snapshot /metrics renders
//   state.cpp           the state machine of one row (sink_state.hpp)
#include <topicflow/sink.hpp>

#include "api_inbox.hpp"
#include "batch.hpp"
#include "batch_writer.hpp"
#include "database_state.hpp"
#include "dispatch_window.hpp"
#include "effects.hpp"
#include "http_api.hpp"
#include "job_progress.hpp"
#include "row_id.hpp"
#include "rows_in_flight.hpp"
#include "scheduler.hpp"
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
#include <fstream>
#include <limits>
#include <stdexcept>
#include <thread>

namespace topicflow {
namespace {

using sink::Row;
using store::Status;
using Write = sink::TopicTable::Write;
constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kShutdownBusyBudgetMs = 10000;
constexpr std::int64_t kSnapshotIntervalMs = 500;

void reset_counts(wire::Ack& ack) {
  ack.accepted = ack.duplicates = ack.skipped_completed = ack.requeued = ack.already_queued = 0;
  ack.rejected = ack.skipped_failed = 0;
}

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

int http_port(const SinkConfig& cfg) {
  return cfg.http_port > 0 ? cfg.http_port : cfg.metrics_port;
}

std::string read_token(const std::string& path) {
  if (path.empty()) return {};
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) {
    throw std::invalid_argument("--http-token-file: cannot read '" + path + "'");
  }
  const auto first = line.find_first_not_of(" \t\r\n");
  const auto last = line.find_last_not_of(" \t\r\n");
  if (first == std::string::npos) {
    throw std::invalid_argument("--http-token-file: '" + path +
                                "' holds no token on its first line");
  }
  return line.substr(first, last - first + 1);
}

void validate_http(const SinkConfig& cfg) {
  if (cfg.http_port > 0 && cfg.metrics_port > 0 && cfg.http_port != cfg.metrics_port) {
    throw std::invalid_argument(
        "--metrics-port is the old name of --http-port (one server serves the API, the dashboard "
        "and /metrics): give one of them, or the same port");
  }
  if (http_port(cfg) == 0) return;
  (void)read_token(cfg.http_token_file);
  const auto& address = cfg.http_port > 0 ? cfg.http_address : cfg.metrics_address;
  if (!sink::is_loopback_address(address) && cfg.http_token_file.empty() && !cfg.http_read_only) {
    throw std::invalid_argument("--http-address " + address +
                                " is reachable from other hosts: give --http-token-file (writes "
                                "need its token) or --http-read-only");
  }
}

class Sink::Impl {
 public:
  Impl(SinkConfig cfg, zmq::context_t* context, const Clock& clock)
      : cfg_(std::move(cfg)),
        clock_(clock),
        policy_{cfg_.lease_ms, cfg_.max_attempts, cfg_.dispatch_timeout_ms},
        retry_backoff_(cfg_.retry_base_ms, cfg_.retry_max_ms),
        own_context_(context == nullptr ? std::make_unique<zmq::context_t>(1) : nullptr),
        context_(context == nullptr ? own_context_.get() : context),
        db_(store::open_for_writing(cfg_.db)),
        table_(db_),
        scheduler_(table_, rows_, policy_),
        writer_(table_, rows_, policy_, retry_backoff_),
        pull_(make_socket(*context_, zmq::socket_type::pull, {.sndhwm = 1000, .rcvhwm = 10000})),
        pub_(make_socket(*context_, zmq::socket_type::pub, {.sndhwm = 100000, .rcvhwm = 1000})),
        push_(make_socket(
            *context_, zmq::socket_type::push,
            {.sndhwm = static_cast<int>(std::max<std::int64_t>(cfg_.dispatch_window * 2, 1000)),
             .rcvhwm = 1000})),
        window_(cfg_.dispatch_window, cfg_.batch_delay_ms, cfg_.lease_ms),
        db_state_(Backoff(cfg_.busy_base_ms, cfg_.busy_max_ms)) {
    db_.busy_timeout(0);  // busy handling is ours: keep the batch, back off with jitter, log
    // Durability of what the sink acknowledges: with FULL, every COMMIT is synced to disk (WAL:
    // one fsync per committed batch; batching is what makes that cheap).
    db_.exec(cfg_.synchronous == "normal" ? "PRAGMA synchronous=NORMAL"
                                          : "PRAGMA synchronous=FULL");
    load_state();
    if (cfg_.security.enabled()) curve_.emplace(*context_, cfg_.security);
    const CurveServer* curve = curve_ ? &*curve_ : nullptr;
    bind_socket(pull_, "--sink", cfg_.endpoints.sink, curve);
    bind_socket(pub_, "--events", cfg_.endpoints.events, curve);
    connect_socket(push_, "--frontend", cfg_.endpoints.frontend, cfg_.security);
    spdlog::info(
        "sink ready: db {} ({} jobs, {} unfinished topics: {} ready, {} running, read in {} ms), "
        "PULL {}, PUB {}, tasks to {}",
        cfg_.db, progress_.counts().size(), progress_.unfinished(), loaded_.ready, loaded_.running,
        loaded_ms_, endpoint(pull_), endpoint(pub_), cfg_.endpoints.frontend);
    spdlog::info(
        "batching: up to {} updates or {} ms, synchronous={} ({}); lease {} ms; max attempts {}; "
        "retry backoff {}..{} ms; dispatch window {}, timeout {} ms",
        cfg_.batch_max, cfg_.batch_delay_ms, cfg_.synchronous,
        cfg_.synchronous == "normal" ? "fsync at checkpoints" : "an fsync per commit",
        cfg_.lease_ms, cfg_.max_attempts, cfg_.retry_base_ms, cfg_.retry_max_ms,
        cfg_.dispatch_window, cfg_.dispatch_timeout_ms);
    publish_snapshot();
    if (const auto port = topicflow::http_port(cfg_); port > 0) start_http(port);
  }

  void run(const StopSignal& stop) {
    stats_window_start_ = clock_.steady_ms();
    while (!stop.triggered()) {
      const auto now = clock_.steady_ms();
      // (a ManualClock's descriptor wakes the loop when a test moves the time)
      std::array<zmq::pollitem_t, 4> items{{{nullptr, stop.fd(), ZMQ_POLLIN, 0},
                                            {nullptr, clock_.wake_fd(), ZMQ_POLLIN, 0},
                                            {pull_.handle(), 0, ZMQ_POLLIN, 0},
                                            {nullptr, inbox_.fd(), ZMQ_POLLIN, 0}}};
      const bool can_read = batch_.events() < static_cast<std::size_t>(cfg_.buffer_max);
      const std::size_t first = clock_.wake_fd() >= 0 ? 0 : 1;  // (skip the clock's slot)
      if (first == 1) items[1] = items[0];
      poll_items(items.data() + first, (can_read ? 4 : 2) - first, poll_timeout(now));
      if (clock_.wake_fd() >= 0) clock_.drain_wake();
      if (stop.triggered()) break;
      if (can_read) {
        drain();
        take_api_calls();
      }
      maybe_commit();
      periodic();
    }
    shutdown();
  }

  SinkCounters counters() const { return counters_; }
  SinkCounters published_counters() const { return snapshot_.read().counters; }
  std::string endpoint(const zmq::socket_t& s) const { return s.get(zmq::sockopt::last_endpoint); }
  std::string sink_endpoint() const { return endpoint(pull_); }
  std::string events_endpoint() const { return endpoint(pub_); }
  int http_port() const { return http_ ? http_->port() : 0; }

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
    for (const auto& job : table_.paused_jobs()) {
      scheduler_.queue().pause(job);
      progress_.set_paused(job, true);
    }
    broker_instance_ = table_.meta("broker_instance").value_or("");
    const auto started = clock_.steady_ms();
    loaded_ = scheduler_.load();
    loaded_ms_ = clock_.steady_ms() - started;
  }

  // The HTTP API, the dashboard, /metrics and /healthz on one port (--http-port, or its alias
  // --metrics-port).
  void start_http(int port) {
    sink::HttpOptions options;
    options.address = cfg_.http_port > 0 ? cfg_.http_address : cfg_.metrics_address;
    options.port = port;
    options.token = read_token(cfg_.http_token_file);
    options.read_only = cfg_.http_read_only;
    options.max_body_bytes = static_cast<std::size_t>(cfg_.http_max_body_bytes);
    options.version = TOPICFLOW_VERSION;
    http_ = std::make_unique<sink::HttpApi>(options, cfg_.db, inbox_, snapshot_);
    spdlog::info("HTTP on http://{}:{}/ (API /v1, dashboard /, /metrics, /healthz){}{}",
                 options.address, http_->port(), cfg_.http_read_only ? ", read-only" : "",
                 options.token.empty() ? "" : ", writes need the bearer token");
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
    batch_.touch(clock_.steady_ms());
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
    if (!m.worker.empty()) window_.heard_from(m.worker, m.slots, clock_.steady_ms());
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

  void on_message(const wire::Control& m) {
    using Kind = sink::JobRequest::Kind;
    Kind kind = Kind::pause;
    switch (m.action) {
      case wire::ControlAction::pause: kind = Kind::pause; break;
      case wire::ControlAction::resume: kind = Kind::resume; break;
      case wire::ControlAction::cancel: kind = Kind::cancel; break;
      case wire::ControlAction::remove: kind = Kind::remove; break;
    }
    batch_.add_request(sink::JobRequest{kind, m.job, m.client, nullptr});
    batch_.touch(clock_.steady_ms());
  }

  // Submissions and job actions from the HTTP API (api_inbox.hpp), answered after the commit.
  void take_api_calls() {
    for (auto& call : inbox_.take()) {
      using Kind = sink::ApiCall::Kind;
      using RequestKind = sink::JobRequest::Kind;
      if (call->kind == Kind::submit) {
        const auto ack = batch_.add_ack(wire::Ack{.kind = wire::AckKind::submit});
        // (a submission id of its own, as a producer run has: same key twice in it = duplicate)
        const std::string_view origin =
            batch_.keep_origin(fmt::format("http-{}-{}", started_wall_ms_, ++api_submissions_));
        for (auto& item : call->items) {
          add_event(call->job, item.key,
                    sink::Event{.kind = sink::EventKind::submit,
                                .data = std::move(item.payload),
                                .origin = origin,
                                .ack = ack});
        }
        batch_.add_api_submit(ack, std::move(call));
        batch_.touch(clock_.steady_ms());
        continue;
      }
      RequestKind kind = RequestKind::pause;
      switch (call->kind) {
        case Kind::pause: kind = RequestKind::pause; break;
        case Kind::resume: kind = RequestKind::resume; break;
        case Kind::cancel: kind = RequestKind::cancel; break;
        case Kind::retry_failed: kind = RequestKind::requeue_failed; break;
        case Kind::remove: kind = RequestKind::remove; break;
        case Kind::submit: break;
      }
      auto job = call->job;
      batch_.add_request(sink::JobRequest{kind, std::move(job), {}, std::move(call)});
      batch_.touch(clock_.steady_ms());
    }
  }

  void on_message(const wire::Requeue& m) {
    batch_.add_request(sink::JobRequest{sink::JobRequest::Kind::requeue_failed, m.job, m.client});
    batch_.touch(clock_.steady_ms());
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
    batch_.touch(clock_.steady_ms());
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
    batch_.touch(clock_.steady_ms());
  }

  // ---- when to commit, when to dispatch ------------------------------------------------------

  [[nodiscard]] std::int64_t budget() const {
    return std::max<std::int64_t>(window_.size() - rows_.in_transit(), 0);
  }
  [[nodiscard]] std::int64_t room_threshold() const {
    return std::max<std::int64_t>(1, window_.size() / 4);
  }
  [[nodiscard]] bool ready_due(std::int64_t wall) {
    const auto due = scheduler_.next_ready_due();
    return due && *due <= wall;
  }
  [[nodiscard]] bool timer_due(std::int64_t wall) const {
    const auto due = scheduler_.next_timer_due();
    return due && *due <= wall;
  }

  // Topics wait and the buffered reports say enough tasks in transit were taken that their
  // commit makes room: committed now rather than at the end of the batch delay, so a worker
  // that starts its queued task gets the next one a round trip later instead of a batch delay
  // later: what keeps `noop` streaming while the window grows, and a slot from idling when its
  // queue is one task deep.
  [[nodiscard]] bool commit_for_room() const {
    return batch_.takes() > 0 &&
           budget() + static_cast<std::int64_t>(batch_.takes()) >= room_threshold();
  }

  std::int64_t poll_timeout(std::int64_t now) {
    std::int64_t deadline = now + 250;
    if (db_state_.retry_at() > 0) {
      deadline = std::min(deadline, db_state_.retry_at());
    } else {
      if (batch_.started_ms() >= 0) {
        deadline = std::min(deadline, batch_.started_ms() + cfg_.batch_delay_ms);
      }
      const auto wall = clock_.wall_ms();
      auto next_due = scheduler_.next_timer_due().value_or(kNever);
      // (only when that would dispatch: with less room, waking for ready rows only spins)
      if (budget() + static_cast<std::int64_t>(batch_.takes()) >= room_threshold()) {
        next_due = std::min(next_due, scheduler_.next_ready_due().value_or(kNever));
      }
      if (next_due != kNever) {
        deadline = std::min(deadline, now + std::max<std::int64_t>(next_due - wall, 0));
      }
    }
    if (progress_.has_dirty()) deadline = std::min(deadline, now + sink::JobProgress::kIntervalMs);
    return std::max<std::int64_t>(deadline - now, 0);
  }

  void maybe_commit() {
    const auto now = clock_.steady_ms();
    if (db_state_.backing_off(now)) return;  // the database refused the last commit
    const auto wall = clock_.wall_ms();
    forget_lost_transit(wall);
    const bool full = batch_.events() >= static_cast<std::size_t>(cfg_.batch_max);
    const bool old = batch_.started_ms() >= 0 && now - batch_.started_ms() >= cfg_.batch_delay_ms;
    const bool leases = rows_.next_lease_due().value_or(kNever) <= wall;
    const bool room = commit_for_room() && ready_due(wall);
    if (full || old || db_state_.retry_at() > 0 || leases || room) {
      if (try_commit()) {
        dispatch(wall);
        return;
      }
    }
    if (budget() >= room_threshold() && ready_due(wall)) dispatch(wall);
  }

  // Tasks handed to the broker and not started within the transit timeout (which follows the
  // observed start latency, transit_timeout.hpp) are presumed lost (a dead worker's buffers):
  // nothing about them is in the database (their rows are ready, with the previous attempt), so
  // forgetting them is the whole resend.
  void forget_lost_transit(std::int64_t wall) {
    if (const auto n = scheduler_.forget_transit(wall); n > 0) {
      counters_.redelivered += n;
      counters_.transit_resent += n;
      spdlog::warn(
          "{} tasks handed to the broker more than {} ms ago were never started (lost with a "
          "worker?): sending them again",
          n, scheduler_.transit_timeout().ms());
    }
  }

  // Hands ready rows to the broker, up to the window's room.
  void dispatch(std::int64_t wall) {
    std::vector<wire::Task> tasks;
    try {
      tasks = scheduler_.dispatch(budget(), wall);
    } catch (const sqlite::SqliteError& e) {
      spdlog::warn("cannot read ready topics ({}); trying again", e.what());
      return;
    }
    send_tasks(tasks);
  }

  // ---- one commit ----------------------------------------------------------------------------

  // One transaction for the whole batch and the leases that expired. Returns false on busy.
  bool try_commit() {
    const auto started_us = steady_us();
    const auto wall = clock_.wall_ms();
    // Tasks handed to a broker that has since restarted are lost with its queue. The first
    // broker this database ever heard of replaces nobody: nothing to resend (tasks dispatched
    // before its first hello are in its queue).
    if (batch_.new_broker() && !broker_instance_.empty()) {
      if (const auto n = scheduler_.forget_all_transit(); n > 0) {
        counters_.redelivered += n;
        spdlog::warn("broker restarted: {} tasks in transit are redelivered", n);
      }
    }
    sink::Effects fx;
    for (auto& ack : batch_.acks()) reset_counts(ack);  // (a failed try counted them already)
    try {
      sqlite::Transaction tx(db_);
      if (batch_.new_broker()) table_.set_meta("broker_instance", *batch_.new_broker());
      writer_.apply(batch_, wall, fx);
      writer_.expire_leases(wall, fx);
      writer_.flush_counts(wall, fx);
      tx.commit();
    } catch (const sqlite::BusyError& e) {
      ++counters_.busy_retries;
      db_state_.failed(sink::DatabaseState::Kind::busy, e.what(), batch_.events(),
                       clock_.steady_ms());
      publish_snapshot();
      return false;
    } catch (const sqlite::UnavailableError& e) {
      // (a full disk or an I/O error: SQLite rolled the transaction back, the file is intact)
      ++counters_.unavailable_retries;
      db_state_.failed(sink::DatabaseState::Kind::unavailable, e.what(), batch_.events(),
                       clock_.steady_ms());
      publish_snapshot();  // /healthz says so at once
      return false;
    }
    on_committed(fx, started_us);
    return true;
  }

  // ---- after COMMIT --------------------------------------------------------------------------

  void on_committed(sink::Effects& fx, std::int64_t started_us) {
    const auto elapsed_us = steady_us() - started_us;
    progress_.add(fx.count_total);
    window_.taken(fx.taken);
    for (const auto& [rowid, latency] : fx.start_latencies)
      scheduler_.started_after(rowid, latency);
    // (ready first: their job names view the batch and the rows in flight)
    for (const auto& r : fx.ready) scheduler_.ready(r.due, r.rowid, r.job);
    for (auto& [id, row] : fx.cache) rows_.put(std::move(id), std::move(row));
    counters_.updates += fx.updates;
    counters_.redelivered += fx.redelivered;
    counters_.retried += fx.retried;
    counters_.duplicates += fx.duplicates;
    counters_.stale += fx.stale;
    counters_.bogus += fx.bogus;
    counters_.guard_refused += fx.guard_refused;
    counters_.lease_expired += fx.lease_expired;
    counters_.cancelled_late += fx.cancelled_late;
    if (fx.updates > 0) {
      ++counters_.batches;
      snapshot_state_.batch_size.observe(static_cast<double>(fx.updates));
      snapshot_state_.commit_seconds.observe(static_cast<double>(elapsed_us) / 1e6);
    }
    if (batch_.new_broker()) broker_instance_ = *batch_.new_broker();

    apply_job_effects(fx);
    answer_requests(fx);
    for (auto& ack : batch_.acks()) {
      if (!ack.client.empty()) publish(wire::ack_topic(ack.client), ack);
    }
    for (const auto& [ack, call] : batch_.api_submits()) {
      sink::answer(*call, sink::ApiResult{200, {}, batch_.acks()[static_cast<std::size_t>(ack)]});
    }
    log_commit(fx, elapsed_us);
    db_state_.succeeded(clock_.steady_ms());
    batch_.clear();
    // The snapshot first: a client that sees a progress event of this commit (the job is done)
    // and then scrapes /metrics finds this commit in it.
    publish_snapshot();
    publish_dirty(false);
  }

  // What job requests changed beyond the rows: the scheduler's queue, the pause flags, and the
  // workers running tasks of a cancelled job.
  void apply_job_effects(const sink::Effects& fx) {
    for (const auto& [job, paused] : fx.paused) {
      if (paused) {
        scheduler_.queue().pause(job);
      } else {
        scheduler_.queue().resume(job);
      }
      progress_.set_paused(job, paused);
    }
    for (const auto job : fx.cancelled_jobs) scheduler_.queue().remove_job(job);
    for (const auto job : fx.removed_jobs) {
      scheduler_.queue().resume(job);  // (a name used again starts unpaused, as the table says)
      scheduler_.queue().remove_job(job);
      progress_.remove(job);
    }
    if (!fx.cancelled_tasks.empty()) {
      publish(std::string(wire::kCancelTopic), wire::Cancel{fx.cancelled_tasks});
    }
  }

  void answer_requests(const sink::Effects& fx) {
    const auto& requests = batch_.requests();
    for (std::size_t i = 0; i < requests.size() && i < fx.results.size(); ++i) {
      const auto& request = requests[i];
      const auto& result = fx.results[i];
      if (request.call) {
        sink::ApiResult answer{result.status, result.error, {}};
        answer.counts.changed = result.changed;
        sink::answer(*request.call, std::move(answer));
        continue;
      }
      if (request.client.empty()) continue;
      wire::Ack ack{.client = request.client};
      if (request.kind == sink::JobRequest::Kind::requeue_failed) {
        ack.kind = wire::AckKind::requeue;
        ack.requeued = result.changed;
      } else {
        ack.kind = wire::AckKind::control;
        ack.changed = result.changed;
        ack.error = result.error;
      }
      publish(wire::ack_topic(ack.client), ack);
    }
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
    spdlog::info("committed {} updates ({}) in {:.1f} ms", fx.updates, detail,
                 static_cast<double>(elapsed_us) / 1000.0);
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
            progress_.progress(job, counters_, clock_.wall_ms(), window_.workers()));
    progress_.published(job, clock_.steady_ms());
  }

  void publish_dirty(bool force) {
    for (const auto& job : progress_.take_due(clock_.steady_ms(), force)) {
      publish(wire::progress_topic(job),
              progress_.progress(job, counters_, clock_.wall_ms(), window_.workers()));
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
    s.synchronous_full = cfg_.synchronous != "normal";
    s.transit_timeout_ms = scheduler_.transit_timeout().ms();
    s.unavailable_since_ms = db_state_.since();
    s.unavailable_reason = db_state_.reason();
    s.unavailable_busy = db_state_.kind() == sink::DatabaseState::Kind::busy;
    s.wall_ms = clock_.wall_ms();
    s.steady_ms = clock_.steady_ms();
    s.paused = progress_.paused_jobs();
    s.workers_seen.clear();
    std::unordered_map<std::string_view, std::uint64_t> running;
    rows_.for_each([&](std::string_view, const sink::Row& row) {
      if (row.status == store::Status::running) ++running[row.worker];
    });
    for (const auto& w : window_.list()) {
      const auto it = running.find(w.id);
      s.workers_seen.push_back(
          sink::WorkerInfo{w.id, w.slots, it == running.end() ? 0 : it->second, w.last_heard_ms});
    }
    snapshot_.publish(s);
    last_snapshot_ms_ = clock_.steady_ms();
  }

  // ---- periodic ------------------------------------------------------------------------------

  void periodic() {
    publish_dirty(false);
    const auto now = clock_.steady_ms();
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
    take_api_calls();
    // (real time: this waits for the database, whatever a test's clock says)
    const auto give_up = topicflow::steady_ms() + kShutdownBusyBudgetMs;
    while (!batch_.empty()) {
      if (try_commit()) break;
      if (topicflow::steady_ms() >= give_up) {
        spdlog::error(
            "database still busy after {} ms; {} updates not committed (their topics are "
            "redelivered when their leases expire)",
            kShutdownBusyBudgetMs, batch_.events());
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(
          std::clamp<std::int64_t>(db_state_.retry_at() - clock_.steady_ms(), 1, 100)));
    }
    if (!batch_.empty()) {  // (the database stayed busy: nothing was committed for them)
      for (const auto& [ack, call] : batch_.api_submits()) {
        sink::answer(*call, sink::ApiResult{503, "the sink stopped before committing", {}});
      }
      for (const auto& request : batch_.requests()) {
        if (request.call) {
          sink::answer(*request.call,
                       sink::ApiResult{503, "the sink stopped before committing", {}});
        }
      }
    }
    inbox_.close();
    publish_dirty(true);
    publish_snapshot();
    spdlog::info("sink stopped: {} updates in {} batches, {} busy retries, {} bad messages",
                 counters_.updates, counters_.batches, counters_.busy_retries,
                 counters_.decode_errors);
  }

  SinkConfig cfg_;
  const Clock& clock_;  // every timer and due time: tests move a ManualClock
  sink::Policy policy_;
  Backoff retry_backoff_;
  wire::Limits limits_;
  std::unique_ptr<zmq::context_t> own_context_;
  zmq::context_t* context_;
  std::optional<CurveServer> curve_;  // with CURVE on: admits clients; destroyed before context
  sqlite::Database db_;
  sink::TopicTable table_;
  sink::RowsInFlight rows_;
  sink::Scheduler scheduler_;
  sink::BatchWriter writer_;
  zmq::socket_t pull_;
  zmq::socket_t pub_;
  zmq::socket_t push_;
  sink::DispatchWindow window_;
  sink::DatabaseState db_state_;

  sink::Batch batch_;
  sink::ApiInbox inbox_;
  std::int64_t started_wall_ms_ = clock_.wall_ms();
  std::uint64_t api_submissions_ = 0;
  sink::JobProgress progress_;
  sink::Scheduler::Loaded loaded_;
  std::int64_t loaded_ms_ = 0;
  std::string broker_instance_;

  // metrics
  SinkCounters counters_;
  sink::Snapshot snapshot_state_;  // the loop's copy, with its histograms
  sink::SharedSnapshot snapshot_;  // what other threads read
  std::int64_t last_snapshot_ms_ = 0;
  std::unique_ptr<sink::HttpApi> http_;  // after what it reads: destroyed (stops) first
  RateLimitedLog bad_messages_;
  std::int64_t stats_window_start_ = 0;
  std::uint64_t stats_updates_ = 0;
  std::uint64_t stats_decode_errors_ = 0;
};

Sink::Sink(SinkConfig config, zmq::context_t* context, const Clock* clock)
    : impl_(std::make_unique<Impl>(std::move(config), context,
                                   clock != nullptr ? *clock : steady_clock())) {}
Sink::~Sink() = default;
void Sink::run(const StopSignal& stop) { impl_->run(stop); }
SinkCounters Sink::counters() const { return impl_->counters(); }
SinkCounters Sink::published_counters() const { return impl_->published_counters(); }
std::string Sink::sink_endpoint() const { return impl_->sink_endpoint(); }
std::string Sink::events_endpoint() const { return impl_->events_endpoint(); }
int Sink::http_port() const { return impl_->http_port(); }

}  // namespace topicflow
