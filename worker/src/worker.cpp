#include <topicflow/worker.hpp>

#include <topicflow/cancel_list.hpp>
#include <topicflow/clock.hpp>
#include <topicflow/handler_pool.hpp>
#include <topicflow/log.hpp>
#include <topicflow/report_buffer.hpp>
#include <topicflow/sockets.hpp>
#include <topicflow/wire.hpp>

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <vector>

namespace topicflow {
namespace {

constexpr std::int64_t kRateLogMs = 10000;  // periodic info line
constexpr int kSinkLingerMs = 500;          // final reports get this long to leave at close
constexpr std::int64_t kMaxIdLength = 200;  // wire allows 256
constexpr std::int64_t kDrainMs = 200;      // shutdown: longest spent giving back buffered tasks
constexpr std::int64_t kDrainQuietMs = 20;  // ... and the quiet time that ends it early
constexpr int kBackendRcvbuf = 32 << 10;    // cap TCP receive buffering (no autotuning to MBs)
constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();

// A task a handler thread has (or will have as soon as one is free).
struct InFlight {
  wire::Task task;
  std::shared_ptr<CancelToken> token;
  std::int64_t started_ms = 0;
  std::int64_t deadline_ms = kNever;  // --task-timeout-ms on the worker's clock
  bool cancelled = false;             // its job was cancelled: told to stop
};

void bump_max(std::atomic<std::uint64_t>& max, std::uint64_t value) {
  auto seen = max.load();
  while (value > seen && !max.compare_exchange_weak(seen, value)) {
  }
}

}  // namespace

std::string default_worker_id() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::strcpy(host, "worker");
  return std::string(host) + "-" + std::to_string(::getpid());
}

// The poll loop and what it orchestrates: taking tasks from the broker (only while a slot is
// free), handing them to the HandlerPool, turning outcomes, heartbeats and shutdown releases into
// updates for the ReportBuffer, and sending its reports to the sink. Timers read clock_.
struct Worker::Impl {
  Impl(WorkerConfig cfg, std::shared_ptr<Handler> handler, const Clock& clock)
      : cfg_(std::move(cfg)),
        handler_(std::move(handler)),
        clock_(clock),
        outbox_(cfg_.id, static_cast<std::uint32_t>(cfg_.concurrency), cfg_.flush_ms),
        cancels_(cfg_.lease_ms) {}

  WorkerConfig cfg_;
  std::shared_ptr<Handler> handler_;
  const Clock& clock_;

  std::atomic<std::uint64_t> received_{0}, completed_{0}, failed_{0}, released_{0}, cancelled_{0},
      bad_messages_{0}, reports_{0}, updates_{0}, coalesced_{0}, in_flight_count_{0},
      max_in_flight_{0};
  std::atomic<bool> stopping_seen_{false};

  // State of run(), on its thread.
  std::unordered_map<std::uint64_t, InFlight> in_flight_;
  ReportBuffer outbox_;
  CancelList cancels_;
  std::uint64_t next_task_id_ = 1;
  RateLimitedLog bad_log_{1000};
  const StopSignal* stop_ = nullptr;  // run()'s
  bool stopping_ = false;
  std::int64_t stop_at_ = -1;  // when the stop was first seen (clock_), -1 before
  struct RateLog {
    std::int64_t next_ms = 0;
    std::int64_t since_ms = 0;
    std::uint64_t completed = 0;
    std::uint64_t failed = 0;
  } rate_;

  void run(const StopSignal& stop);

  // ---- time -----------------------------------------------------------------------------------

  [[nodiscard]] std::int64_t now() const noexcept { return clock_.steady_ms(); }
  [[nodiscard]] std::int64_t heartbeat_every() const noexcept {
    return std::max<std::int64_t>(1, cfg_.lease_ms / 3);
  }
  // Reports are sent until then at the latest (a full pipe to a dead sink must not hold the
  // shutdown forever); the clock starts when the stop is first seen, here or in the loop.
  [[nodiscard]] std::int64_t hard_deadline() {
    if (stop_at_ < 0 && stop_->triggered()) stop_at_ = now();
    return stop_at_ < 0 ? kNever : stop_at_ + cfg_.shutdown_grace_ms + kSinkLingerMs;
  }
  [[nodiscard]] std::int64_t next_task_deadline() const noexcept {
    std::int64_t next = kNever;
    if (cfg_.task_timeout_ms <= 0) return next;
    for (const auto& [task_id, f] : in_flight_) next = std::min(next, f.deadline_ms);
    return next;
  }

  // ---- reports --------------------------------------------------------------------------------

  // `announce`: send even an empty report, so the sink knows this worker and its slots (it sizes
  // its dispatch window with them).
  void flush(zmq::socket_t& sink, bool announce = false) {
    if (outbox_.empty() && !announce) return;
    auto report = outbox_.take();
    const auto n = report.updates.size();
    const auto bytes = wire::encode(report);
    zmq::message_t msg(bytes.data(), bytes.size());
    if (send_report(sink, msg)) {
      reports_.fetch_add(1);
      updates_.fetch_add(n);
    } else {
      spdlog::warn("could not send a report of {} updates to the sink before the shutdown deadline",
                   n);
    }
  }

  // Sends without blocking the loop forever: a full pipe (sink down or slow) is retried until
  // the shutdown deadline; signals (EINTR) are not errors.
  bool send_report(zmq::socket_t& sink, zmq::message_t& msg) {
    for (;;) {
      try {
        if (sink.send(msg, zmq::send_flags::dontwait)) return true;
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;
      }
      if (now() >= hard_deadline()) return false;
      zmq::pollitem_t item{sink.handle(), 0, ZMQ_POLLOUT, 0};
      poll_items(&item, 1, 50);
    }
  }

  void send_heartbeats(zmq::socket_t& sink, std::int64_t at) {
    for (const auto& [task_id, f] : in_flight_) {
      // A `started` still waiting in the buffer says the same, and says it first.
      if (!outbox_.started_pending(task_id))
        outbox_.add(task_id, ReportBuffer::update_for(wire::UpdateKind::heartbeat, f.task), at);
    }
    flush(sink, /*announce=*/true);
  }

  // ---- tasks ----------------------------------------------------------------------------------

  // Per-message firewall: anything but a well-formed task (or batch of tasks) is counted,
  // logged (rate-limited) and dropped.
  std::vector<wire::Task> decode_tasks(zmq::message_t& msg, zmq::socket_t& backend) {
    bool multipart = msg.more();
    while (multipart) {  // drain the rest of a multipart message: tasks are one frame
      zmq::message_t part;
      if (!backend.recv(part, zmq::recv_flags::dontwait)) break;
      multipart = part.more();
    }
    std::vector<wire::Task> tasks;
    if (msg.more()) {
      bad_messages_.fetch_add(1);
      bad_log_.warn("dropped a multipart message from the broker (tasks are one frame)");
      return tasks;
    }
    try {
      auto decoded = wire::decode(msg.to_string_view());
      if (auto* t = std::get_if<wire::Task>(&decoded)) {
        tasks.push_back(std::move(*t));
      } else if (auto* batch = std::get_if<wire::TaskBatch>(&decoded)) {
        tasks = std::move(batch->tasks);
      } else {
        bad_messages_.fetch_add(1);
        bad_log_.warn("dropped a '" + std::string(wire::type_name(decoded)) +
                      "' message from the broker (expected a task)");
      }
    } catch (const std::exception& e) {
      bad_messages_.fetch_add(1);
      bad_log_.warn(std::string("dropped an undecodable message from the broker: ") + e.what());
    }
    return tasks;
  }

  // A batch of short tasks is taken whole: the sink sends batches only when a slot runs many
  // tasks per millisecond, so what waits here for a slot is a few milliseconds of work.
  void start_tasks(zmq::message_t& msg, zmq::socket_t& backend, HandlerPool& pool) {
    auto tasks = decode_tasks(msg, backend);
    if (tasks.empty()) return;
    const auto at = now();
    std::vector<HandlerPool::Job> jobs;
    jobs.reserve(tasks.size());
    for (auto& task : tasks) {
      received_.fetch_add(1);
      const auto task_id = next_task_id_++;
      if (cancels_.contains(task.job, task.key, task.attempt, at)) {
        // its job was cancelled while it was on its way: not run (the sink ignores the result)
        cancelled_.fetch_add(1);
        spdlog::debug("{}/{} attempt {}: cancelled before it started", task.job, task.key,
                      task.attempt);
        auto update = ReportBuffer::update_for(wire::UpdateKind::failed, task);
        update.data = "cancelled before it started (its job was cancelled)";
        outbox_.add(task_id, std::move(update), at);
        continue;
      }
      auto token = std::make_shared<CancelToken>(cfg_.task_timeout_ms);
      spdlog::debug("{}/{} attempt {}: started", task.job, task.key, task.attempt);
      outbox_.add(task_id, ReportBuffer::update_for(wire::UpdateKind::started, task), at);
      const auto deadline = cfg_.task_timeout_ms > 0 ? at + cfg_.task_timeout_ms : kNever;
      in_flight_.emplace(task_id, InFlight{task, token, at, deadline});
      jobs.push_back(HandlerPool::Job{task_id, std::move(task), std::move(token)});
    }
    in_flight_count_.store(in_flight_.size());
    bump_max(max_in_flight_, in_flight_.size());
    pool.submit(std::move(jobs));
  }

  // The sink's `cancel` events: tasks of a cancelled job. Running ones are told to stop through
  // their token (exec kills the process group); the others are remembered, and dropped if they
  // arrive later. The sink repeats the event for a task whose heartbeat it still hears.
  void take_cancels(zmq::socket_t& events) {
    const auto at = now();
    for (int i = 0; i < 64; ++i) {
      zmq::message_t topic;
      zmq::message_t body;
      if (!events.recv(topic, zmq::recv_flags::dontwait)) return;
      if (!topic.more() || !events.recv(body, zmq::recv_flags::dontwait)) continue;
      while (body.more()) {  // (a malformed multipart event: drain it)
        zmq::message_t extra;
        if (!events.recv(extra, zmq::recv_flags::dontwait)) break;
        body = std::move(extra);
      }
      wire::Cancel cancel;
      try {
        auto decoded = wire::decode(body.to_string_view());
        auto* c = std::get_if<wire::Cancel>(&decoded);
        if (c == nullptr) continue;  // (another event under a topic starting with "cancel")
        cancel = std::move(*c);
      } catch (const std::exception& e) {
        bad_messages_.fetch_add(1);
        bad_log_.warn(std::string("dropped an undecodable event from the sink: ") + e.what());
        continue;
      }
      for (const auto& t : cancel.tasks) {
        cancels_.add(t.job, t.key, t.attempt, at);
        for (auto& [task_id, f] : in_flight_) {
          if (f.cancelled || f.task.job != t.job || f.task.key != t.key ||
              f.task.attempt != t.attempt) {
            continue;
          }
          f.cancelled = true;
          f.token->cancel();
          cancelled_.fetch_add(1);
          spdlog::info("{}/{} attempt {}: its job was cancelled: stopping it", t.job, t.key,
                       t.attempt);
        }
      }
    }
  }

  // Tasks past --task-timeout-ms on the worker's clock are told so through their token (the
  // handler returns its timeout failure); the token's own deadline says the same on the steady
  // clock, so handlers that wait on it need not poll the token.
  void expire_overdue(std::int64_t at) {
    if (cfg_.task_timeout_ms <= 0) return;
    for (auto& [task_id, f] : in_flight_) {
      if (at >= f.deadline_ms) {
        f.token->expire();
        f.deadline_ms = kNever;
      }
    }
  }

  void finish(std::uint64_t task_id, Outcome outcome) {
    auto it = in_flight_.find(task_id);
    if (it == in_flight_.end()) return;  // already released at shutdown
    auto& f = it->second;
    const auto at = now();
    if (outcome.ok() && cfg_.max_result_bytes >= 0 &&
        outcome.data.size() > static_cast<std::size_t>(cfg_.max_result_bytes)) {
      outcome = Outcome::failed("result of " + std::to_string(outcome.data.size()) +
                                    " bytes exceeds --max-result-bytes " +
                                    std::to_string(cfg_.max_result_bytes),
                                false);
    }
    if (!outcome.ok() && outcome.data.size() > wire::Limits{}.max_data_bytes) {
      outcome.data.resize(wire::Limits{}.max_data_bytes);
    }
    if (outbox_.drop_started(task_id)) coalesced_.fetch_add(1);
    auto update = ReportBuffer::update_for(
        outcome.ok() ? wire::UpdateKind::completed : wire::UpdateKind::failed, f.task);
    update.retryable = !outcome.ok() && outcome.retryable;
    update.data = std::move(outcome.data);
    if (outcome.ok()) {
      completed_.fetch_add(1);
      spdlog::debug("{}/{} attempt {}: completed in {} ms ({} bytes)", f.task.job, f.task.key,
                    f.task.attempt, at - f.started_ms, update.data.size());
    } else {
      failed_.fetch_add(1);
      spdlog::debug("{}/{} attempt {}: failed in {} ms ({}): {}", f.task.job, f.task.key,
                    f.task.attempt, at - f.started_ms, update.retryable ? "retryable" : "permanent",
                    update.data);
    }
    outbox_.add(task_id, std::move(update), at);
    in_flight_.erase(it);
    in_flight_count_.store(in_flight_.size());
  }

  // ---- shutdown -------------------------------------------------------------------------------

  // At shutdown: tasks the broker already pushed into this worker's buffers (ZeroMQ pipe and
  // kernel socket buffers, which HWMs do not bound) would be lost with the socket and wait for
  // the sink's dispatch timeout. Read what is already here and give it back as `released`, so
  // the sink redelivers it at once. Bounded in real time (it waits for I/O, not for a policy),
  // since the broker keeps pushing.
  void release_buffered(zmq::socket_t& backend, zmq::socket_t& sink) {
    const auto until = steady_ms() + kDrainMs;
    std::size_t n = 0;
    auto take_all = [&] {
      for (;;) {
        std::optional<zmq::message_t> msg;
        try {
          msg = try_recv(backend);
        } catch (const zmq::error_t& e) {
          if (e.num() != EINTR) throw;
        }
        if (!msg) return;
        for (auto& task : decode_tasks(*msg, backend)) {
          outbox_.add(0, ReportBuffer::update_for(wire::UpdateKind::released, task), now());
          released_.fetch_add(1);
          ++n;
          // Held until we have left the rotation (below), or the sink could hand them straight
          // back into this connection; only the frame-size bound forces an early send.
          if (outbox_.bytes() >= ReportBuffer::kMaxBytes) flush(sink);
        }
      }
    };
    while (steady_ms() < until) {
      zmq::pollitem_t item{backend.handle(), 0, ZMQ_POLLIN, 0};
      poll_items(&item, 1, std::min<std::int64_t>(kDrainQuietMs, until - steady_ms()));
      if ((item.revents & ZMQ_POLLIN) == 0) break;  // quiet: nothing more in transit to us
      take_all();
    }
    // Leave the broker's rotation now, so it stops pushing into buffers nobody will read while
    // the running handlers get their grace.
    try {
      backend.disconnect(cfg_.endpoints.backend);
    } catch (const zmq::error_t& e) {
      spdlog::debug("disconnect {}: {}", cfg_.endpoints.backend, e.what());
    }
    take_all();
    if (n > 0)
      spdlog::info("released {} tasks that were buffered for this worker but not started", n);
  }

  void begin_stop(zmq::socket_t& backend, zmq::socket_t& sink) {
    stopping_ = true;
    (void)hard_deadline();  // starts the grace period
    stopping_seen_.store(true);
    spdlog::info("stopping: {} tasks in flight, waiting up to {} ms for them", in_flight_.size(),
                 cfg_.shutdown_grace_ms);
    release_buffered(backend, sink);
    flush(sink);
  }

  void release_all() {
    const auto at = now();
    for (auto& [task_id, f] : in_flight_) {
      if (outbox_.drop_started(task_id)) coalesced_.fetch_add(1);
      f.token->cancel();
      outbox_.add(task_id, ReportBuffer::update_for(wire::UpdateKind::released, f.task), at);
      released_.fetch_add(1);
      spdlog::debug("{}/{} attempt {}: released", f.task.job, f.task.key, f.task.attempt);
    }
    in_flight_.clear();
    in_flight_count_.store(0);
  }

  void log_rate(std::int64_t at) {
    const auto c = completed_.load();
    const auto f = failed_.load();
    const auto secs = static_cast<double>(std::max<std::int64_t>(1, at - rate_.since_ms)) / 1000.0;
    spdlog::info(
        "{} completed, {} failed in the last {:.0f} s ({:.1f} tasks/s); {} in flight; totals {} "
        "completed, {} failed, {} bad messages",
        c - rate_.completed, f - rate_.failed, secs,
        static_cast<double>(c - rate_.completed + f - rate_.failed) / secs, in_flight_.size(), c, f,
        bad_messages_.load());
    rate_ = RateLog{at + kRateLogMs, at, c, f};
  }
};

void check_worker_config(const WorkerConfig& config) {
  auto bad = [](const std::string& why) { throw std::invalid_argument(why); };
  if (config.concurrency < 1)
    bad("--concurrency must be at least 1 (got " + std::to_string(config.concurrency) + ")");
  if (config.concurrency > 4096) bad("--concurrency must be at most 4096");
  if (config.lease_ms <= 0) bad("--lease-ms must be positive");
  if (config.task_timeout_ms < 0) bad("--task-timeout-ms must not be negative (0: no timeout)");
  if (config.shutdown_grace_ms < 0) bad("--shutdown-grace-ms must not be negative");
  if (config.flush_ms < 0) bad("--flush-ms must not be negative");
  if (config.max_result_bytes < 0 ||
      static_cast<std::uint64_t>(config.max_result_bytes) > wire::Limits{}.max_data_bytes) {
    bad("--max-result-bytes must be between 0 and " +
        std::to_string(wire::Limits{}.max_data_bytes));
  }
  validate_endpoints(config.endpoints);
  if (config.id.size() > static_cast<std::size_t>(kMaxIdLength))
    bad("--id is longer than 200 bytes");
}

Worker::Worker(WorkerConfig config, std::unique_ptr<Handler> handler, const Clock& clock) {
  if (!handler) throw std::invalid_argument("no handler");
  if (config.id.empty()) config.id = default_worker_id();
  check_worker_config(config);
  impl_ = std::make_unique<Impl>(std::move(config), std::move(handler), clock);
}

Worker::~Worker() = default;

const std::string& Worker::id() const noexcept { return impl_->cfg_.id; }

WorkerCounters Worker::counters() const noexcept {
  const auto& i = *impl_;
  WorkerCounters c;
  c.received = i.received_.load();
  c.completed = i.completed_.load();
  c.failed = i.failed_.load();
  c.released = i.released_.load();
  c.bad_messages = i.bad_messages_.load();
  c.reports = i.reports_.load();
  c.updates = i.updates_.load();
  c.coalesced = i.coalesced_.load();
  c.in_flight = i.in_flight_count_.load();
  c.max_in_flight = i.max_in_flight_.load();
  c.stopping = i.stopping_seen_.load();
  return c;
}

void Worker::run(const StopSignal& stop) { impl_->run(stop); }

void Worker::Impl::run(const StopSignal& stop) {
  const auto concurrency = static_cast<std::size_t>(cfg_.concurrency);
  spdlog::info("worker {} starting: backend {}, sink {}, concurrency {}, handler {}", cfg_.id,
               cfg_.endpoints.backend, cfg_.endpoints.sink, cfg_.concurrency, handler_->describe());

  zmq::context_t ctx(1);
  SocketOptions pull_options;
  pull_options.rcvhwm = 1;  // do not hoard: a task waits in the broker until a slot is free
  auto backend = make_socket(ctx, zmq::socket_type::pull, pull_options);
  backend.set(zmq::sockopt::rcvbuf, kBackendRcvbuf);
  SocketOptions push_options;
  push_options.linger_ms = kSinkLingerMs;
  auto sink = make_socket(ctx, zmq::socket_type::push, push_options);
  connect_socket(backend, "--backend", cfg_.endpoints.backend, cfg_.security);
  connect_socket(sink, "--sink", cfg_.endpoints.sink, cfg_.security);
  // The sink's events, only `cancel` (tasks of a cancelled job to stop).
  auto events = make_socket(ctx, zmq::socket_type::sub, SocketOptions{});
  events.set(zmq::sockopt::subscribe, wire::kCancelTopic);
  connect_socket(events, "--events", cfg_.endpoints.events, cfg_.security);

  HandlerPool pool(handler_, concurrency);
  // On an exception below, handlers still running are told to stop before the threads go.
  struct CancelOnUnwind {  // NOLINT(cppcoreguidelines-special-member-functions): a scope guard
    std::unordered_map<std::uint64_t, InFlight>& tasks;
    ~CancelOnUnwind() {
      for (auto& [task_id, f] : tasks) f.token->cancel();
    }
  } cancel_on_unwind{in_flight_};

  stop_ = &stop;
  flush(sink, /*announce=*/true);
  auto next_heartbeat = now() + heartbeat_every();
  rate_ = RateLog{now() + kRateLogMs, now(), 0, 0};

  for (;;) {
    auto at = now();
    if (!stopping_ && stop.triggered()) begin_stop(backend, sink);
    const bool stopping = stopping_;

    pool.drain_wake();
    for (auto& done : pool.take_done()) finish(done.id, std::move(done.outcome));

    if (stopping) {
      if (in_flight_.empty()) break;
      if (at >= stop_at_ + cfg_.shutdown_grace_ms) {
        spdlog::info("releasing {} tasks still running after {} ms", in_flight_.size(),
                     cfg_.shutdown_grace_ms);
        release_all();
        break;
      }
    }
    expire_overdue(at);
    if (at >= next_heartbeat) {
      send_heartbeats(sink, at);
      next_heartbeat = at + heartbeat_every();
    }
    if (outbox_.due(at)) flush(sink);
    if (at >= rate_.next_ms) log_rate(at);

    // Sleep until something happens or the next timer.
    at = now();
    auto wake_at = std::min({next_heartbeat, rate_.next_ms, next_task_deadline()});
    if (const auto due = outbox_.due_ms()) wake_at = std::min(wake_at, *due);
    if (stopping) wake_at = std::min(wake_at, stop_at_ + cfg_.shutdown_grace_ms);
    const bool want_task = !stopping && in_flight_.size() < concurrency;
    std::vector<zmq::pollitem_t> items;
    items.push_back({nullptr, pool.wake_fd(), ZMQ_POLLIN, 0});
    if (!stopping) items.push_back({nullptr, stop.fd(), ZMQ_POLLIN, 0});
    if (clock_.wake_fd() >= 0) items.push_back({nullptr, clock_.wake_fd(), ZMQ_POLLIN, 0});
    items.push_back({events.handle(), 0, ZMQ_POLLIN, 0});
    if (want_task) items.push_back({backend.handle(), 0, ZMQ_POLLIN, 0});
    poll_items(items.data(), items.size(), std::max<std::int64_t>(0, wake_at - at));
    if (clock_.wake_fd() >= 0) clock_.drain_wake();
    take_cancels(events);

    if (want_task && (items.back().revents & ZMQ_POLLIN)) {
      while (in_flight_.size() < concurrency && !stop.triggered()) {
        std::optional<zmq::message_t> msg;
        try {
          msg = try_recv(backend);
        } catch (const zmq::error_t& e) {
          if (e.num() != EINTR) throw;
        }
        if (!msg) break;
        start_tasks(*msg, backend, pool);
      }
    }
  }

  flush(sink);

  if (!pool.close()) spdlog::warn("some handlers ignored cancellation; abandoning their threads");

  spdlog::info(
      "worker {} stopped: {} completed, {} failed, {} released, {} cancelled, {} bad messages",
      cfg_.id, completed_.load(), failed_.load(), released_.load(), cancelled_.load(),
      bad_messages_.load());
}

}  // namespace topicflow
