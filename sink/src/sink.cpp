// The sink's loop and the orchestration of one commit. The work is done by units with one job
// each (docs/ARCHITECTURE.md has the code map):
//   intake.hpp          frames and HTTP calls become batch events, acks and job requests
//   batch.hpp           what arrived since the last commit, coalesced per topic
//   batch_commit.hpp    the transaction of one commit; busy / full / I/O error: keep, back off
//   batch_writer.hpp    one commit's row work: events -> state machine -> one write per row
//   commit_effects.hpp  after COMMIT: counters, job requests' effects, answers
//   topic_table.hpp     the row SQL (read a row, write a row under the guard)
//   scheduler.hpp       hands ready rows out (ready_queue.hpp), takes back lost tasks
//   rows_in_flight.hpp  rows in transit and running (leases), kept in memory
//   dispatch_window.hpp how many tasks may be in transit, and per message
//   job_progress.hpp    counts per job and status; which progress events are due
//   event_publisher.hpp acks, cancels and progress on the PUB socket
//   sink_metrics.hpp    counters and the snapshot /metrics renders
//   stats_line.hpp      the periodic "rate: ..." line
//   state.cpp           the state machine of one row (sink_state.hpp)
#include <topicflow/sink.hpp>

#include "api_inbox.hpp"
#include "batch.hpp"
#include "batch_commit.hpp"
#include "batch_writer.hpp"
#include "commit_effects.hpp"
#include "database_state.hpp"
#include "dispatch_window.hpp"
#include "effects.hpp"
#include "event_publisher.hpp"
#include "http_api.hpp"
#include "http_config.hpp"
#include "intake.hpp"
#include "job_progress.hpp"
#include "rows_in_flight.hpp"
#include "scheduler.hpp"
#include "sink_metrics.hpp"
#include "stats_line.hpp"
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
#include <limits>
#include <thread>

namespace topicflow {
namespace {

constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kShutdownBusyBudgetMs = 10000;
constexpr std::int64_t kSnapshotIntervalMs = 500;

}  // namespace

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
    if (topicflow::http_port(cfg_) > 0) start_http();
  }

  void run(const StopSignal& stop) {
    stats_.start(clock_.steady_ms());
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
        intake_.take(inbox_.take());
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
  void start_http() {
    const auto options = sink::http_options(cfg_);
    http_ = std::make_unique<sink::HttpApi>(options, cfg_.db, inbox_, snapshot_);
    spdlog::info("HTTP on http://{}:{}/ (API /v1, dashboard /, /metrics, /healthz){}{}",
                 options.address, http_->port(), cfg_.http_read_only ? ", read-only" : "",
                 options.token.empty() ? "" : ", writes need the bearer token");
  }

  // ---- receiving: messages become batch events (intake.hpp) ---------------------------------

  void drain() {
    const auto buffer_max = static_cast<std::size_t>(cfg_.buffer_max);
    for (std::size_t i = 0; i < 4096 && batch_.events() < buffer_max; ++i) {
      auto msg = try_recv(pull_);
      if (!msg) break;
      intake_.handle(std::string_view(static_cast<const char*>(msg->data()), msg->size()));
      if (batch_.events() >= static_cast<std::size_t>(cfg_.batch_max)) break;
    }
  }

  void answer_hello(const wire::Hello& m) {
    events_.publish(wire::ack_topic(m.client),
                    wire::Ack{.client = m.client, .kind = wire::AckKind::hello});
    if (!m.job.empty()) events_.progress(m.job);
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

  // ---- one commit ----------------------------------------------------------------------------

  // One transaction for the whole batch and the leases that expired (batch_commit.hpp).
  // Returns false when the database refused it.
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
    if (!commit_.run(batch_, wall, fx)) {
      publish_snapshot();  // /healthz says so at once
      return false;
    }
    on_committed(fx, started_us);
    return true;
  }

  // After COMMIT: the commit's effects go into memory, then the answers go out.
  void on_committed(sink::Effects& fx, std::int64_t started_us) {
    const auto elapsed_us = steady_us() - started_us;
    progress_.add(fx.count_total);
    window_.taken(fx.taken);
    for (const auto& [rowid, latency] : fx.start_latencies)
      scheduler_.started_after(rowid, latency);
    // (ready first: their job names view the batch and the rows in flight)
    for (const auto& r : fx.ready) scheduler_.ready(r.due, r.rowid, r.job);
    for (auto& [id, row] : fx.cache) rows_.put(std::move(id), std::move(row));
    sink::add_counters(counters_, fx);
    if (fx.updates > 0) {
      snapshot_state_.batch_size.observe(static_cast<double>(fx.updates));
      snapshot_state_.commit_seconds.observe(static_cast<double>(elapsed_us) / 1e6);
    }
    if (batch_.new_broker()) broker_instance_ = *batch_.new_broker();

    sink::apply_job_effects(fx, scheduler_.queue(), progress_);
    if (!fx.cancelled_tasks.empty()) {
      events_.publish(std::string(wire::kCancelTopic), wire::Cancel{fx.cancelled_tasks});
    }
    for (const auto& ack : sink::answer_requests(batch_.requests(), fx.results)) {
      events_.publish(wire::ack_topic(ack.client), ack);
    }
    for (auto& ack : batch_.acks()) {
      if (!ack.client.empty()) events_.publish(wire::ack_topic(ack.client), ack);
    }
    sink::answer_api_submits(batch_);
    if (fx.updates > 0) {
      spdlog::info("committed {} updates ({}) in {:.1f} ms", fx.updates, sink::written_summary(fx),
                   static_cast<double>(elapsed_us) / 1000.0);
    }
    db_state_.succeeded(clock_.steady_ms());
    batch_.clear();
    // The snapshot first: a client that sees a progress event of this commit (the job is done)
    // and then scrapes /metrics finds this commit in it.
    publish_snapshot();
    events_.due_progress(false);
  }

  // ---- what other threads see, and the periodic work ----------------------------------------

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

  void periodic() {
    events_.due_progress(false);
    const auto now = clock_.steady_ms();
    window_.tick(now);
    if (now - last_snapshot_ms_ >= kSnapshotIntervalMs) publish_snapshot();
    if (auto line = stats_.take(now, counters_, progress_.unfinished(), rows_.in_transit())) {
      spdlog::info("{}", *line);
    }
  }

  // ---- shutdown ------------------------------------------------------------------------------

  void shutdown() {
    spdlog::info("stopping: committing {} buffered updates", batch_.events());
    // Take what is already queued, then commit; bounded even if the database stays busy.
    drain();
    intake_.take(inbox_.take());
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
    // (the database stayed busy: nothing was committed for them)
    if (!batch_.empty()) sink::refuse_api_calls(batch_, 503, "the sink stopped before committing");
    inbox_.close();
    events_.due_progress(true);
    publish_snapshot();
    spdlog::info("sink stopped: {} updates in {} batches, {} busy retries, {} bad messages",
                 counters_.updates, counters_.batches, counters_.busy_retries,
                 counters_.decode_errors);
  }

  SinkConfig cfg_;
  const Clock& clock_;  // every timer and due time: tests move a ManualClock
  sink::Policy policy_;
  Backoff retry_backoff_;
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
  sink::JobProgress progress_;
  sink::Scheduler::Loaded loaded_;
  std::int64_t loaded_ms_ = 0;
  std::string broker_instance_;

  // metrics
  SinkCounters counters_;
  sink::Snapshot snapshot_state_;  // the loop's copy, with its histograms
  sink::SharedSnapshot snapshot_;  // what other threads read
  std::int64_t last_snapshot_ms_ = 0;
  sink::StatsLine stats_{cfg_.stats_interval_ms};

  sink::EventPublisher events_{pub_, progress_, counters_, window_, clock_};
  sink::Intake intake_{
      batch_, rows_, window_, counters_, clock_, broker_instance_, [this](const wire::Hello& m) {
        answer_hello(m);
      }};
  sink::BatchCommit commit_{db_, table_, writer_, db_state_, counters_, clock_};
  std::unique_ptr<sink::HttpApi> http_;  // after what it reads: destroyed (stops) first
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
