#include <topicflow/clock.hpp>
#include <topicflow/log.hpp>
#include <topicflow/sockets.hpp>
#include <topicflow/wire.hpp>
#include <topicflow/worker.hpp>

#include <sys/eventfd.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <vector>

namespace topicflow {
namespace {

constexpr std::size_t kFlushUpdates = 256;     // a report is sent when this many are queued
constexpr std::size_t kFlushBytes = 4U << 20;  // ... or this many bytes (sink MAXMSGSIZE is 16 MiB)
constexpr std::int64_t kRateLogMs = 10000;     // periodic info line
constexpr std::int64_t kThreadJoinMs = 300;    // after cancelling, how long threads get to return
constexpr int kSinkLingerMs = 500;             // final reports get this long to leave at close
constexpr std::int64_t kMaxIdLength = 200;     // wire allows 256
constexpr std::int64_t kDrainMs = 200;         // shutdown: longest spent giving back buffered tasks
constexpr std::int64_t kDrainQuietMs = 20;     // ... and the quiet time that ends it early
constexpr int kBackendRcvbuf = 32 << 10;       // cap TCP receive buffering (no autotuning to MBs)

struct Job {
  std::uint64_t id = 0;
  wire::Task task;
  std::shared_ptr<CancelToken> token;
};

struct Done {
  std::uint64_t id = 0;
  Outcome outcome;
};

// State shared with the handler threads. Threads hold a shared_ptr, so a thread abandoned at
// shutdown (a handler that ignores its CancelToken) never touches freed memory.
struct Pool {
  std::shared_ptr<Handler> handler;
  std::mutex mutex;
  std::condition_variable cv;  // jobs available / closing / a thread exited
  std::deque<Job> jobs;
  std::deque<Done> done;
  bool closing = false;
  int alive = 0;
  int wake_fd = -1;  // eventfd: written once per Done, polled by the main thread

  explicit Pool(std::shared_ptr<Handler> h) : handler(std::move(h)) {
    wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
  }
  ~Pool() { ::close(wake_fd); }
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  void wake() const noexcept {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd, &one, sizeof one);
  }
  void drain_wake() const noexcept {
    std::uint64_t value = 0;
    [[maybe_unused]] auto n = ::read(wake_fd, &value, sizeof value);
  }

  static void thread_main(const std::shared_ptr<Pool>& pool) {
    for (;;) {
      Job job;
      {
        std::unique_lock lock(pool->mutex);
        pool->cv.wait(lock, [&] { return pool->closing || !pool->jobs.empty(); });
        if (pool->jobs.empty()) break;
        job = std::move(pool->jobs.front());
        pool->jobs.pop_front();
      }
      Done done{job.id, Outcome{}};
      try {
        const TaskView view{job.task.job, job.task.key, job.task.payload, job.task.attempt};
        done.outcome = pool->handler->handle(view, *job.token);
      } catch (const std::exception& e) {
        done.outcome = Outcome::failed(std::string("handler threw: ") + e.what(), true);
      } catch (...) {
        done.outcome = Outcome::failed("handler threw a non-standard exception", true);
      }
      {
        std::lock_guard lock(pool->mutex);
        pool->done.push_back(std::move(done));
      }
      pool->wake();
    }
    {
      std::lock_guard lock(pool->mutex);
      --pool->alive;
    }
    pool->cv.notify_all();
  }
};

// The handler threads. close() (also run by the destructor, so an exception cannot leave
// joinable threads behind) lets idle threads exit, gives busy ones kThreadJoinMs to return,
// and detaches any that do not.
class PoolThreads {
 public:
  PoolThreads(std::shared_ptr<Pool> pool, std::size_t n) : pool_(std::move(pool)) {
    {
      std::lock_guard lock(pool_->mutex);
      pool_->alive = static_cast<int>(n);
    }
    threads_.reserve(n);
    try {
      for (std::size_t i = 0; i < n; ++i)
        threads_.emplace_back([p = pool_] { Pool::thread_main(p); });
    } catch (...) {
      {
        std::lock_guard lock(pool_->mutex);
        pool_->alive -= static_cast<int>(n - threads_.size());
      }
      close();
      throw;
    }
  }
  ~PoolThreads() { close(); }
  PoolThreads(const PoolThreads&) = delete;
  PoolThreads& operator=(const PoolThreads&) = delete;

  // True if every thread exited (and was joined); false if some were detached.
  bool close() noexcept {
    if (threads_.empty()) return true;
    bool all_exited = false;
    {
      std::unique_lock lock(pool_->mutex);
      pool_->closing = true;
      pool_->jobs.clear();
      pool_->cv.notify_all();
      all_exited = pool_->cv.wait_for(lock, std::chrono::milliseconds(kThreadJoinMs),
                                      [&] { return pool_->alive == 0; });
    }
    for (auto& t : threads_) {
      if (all_exited) {
        t.join();
      } else {
        t.detach();
      }
    }
    threads_.clear();
    return all_exited;
  }

 private:
  std::shared_ptr<Pool> pool_;
  std::vector<std::thread> threads_;
};

struct InFlight {
  wire::Task task;
  std::shared_ptr<CancelToken> token;
  std::int64_t started_ms = 0;
  bool started_queued = false;  // its `started` is in the pending report, not yet sent
};

struct Pending {
  std::uint64_t task_id = 0;
  wire::Update update;
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

struct Worker::Impl {
  WorkerConfig cfg;
  std::shared_ptr<Handler> handler;
  std::string id;

  std::atomic<std::uint64_t> received{0}, completed{0}, failed{0}, released{0}, bad_messages{0},
      reports{0}, updates{0}, coalesced{0}, in_flight_count{0}, max_in_flight{0};

  // Main-thread state of run().
  std::unordered_map<std::uint64_t, InFlight> in_flight;
  std::vector<Pending> pending;
  std::size_t pending_bytes = 0;
  std::int64_t first_pending_ms = 0;
  std::uint64_t next_task_id = 1;
  RateLimitedLog bad_log{1000};
  std::int64_t stop_at = -1;  // steady ms when the stop was seen, -1 while serving

  std::int64_t hard_deadline(const StopSignal& stop) {
    if (stop_at < 0 && stop.triggered()) stop_at = steady_ms();
    if (stop_at < 0) return std::numeric_limits<std::int64_t>::max();
    return stop_at + cfg.shutdown_grace_ms + kSinkLingerMs;
  }

  void queue(std::uint64_t task_id, wire::Update update) {
    if (pending.empty()) first_pending_ms = steady_ms();
    pending_bytes += update.job.size() + update.key.size() + update.data.size() + 16;
    pending.push_back(Pending{task_id, std::move(update)});
  }

  static wire::Update make_update(wire::UpdateKind kind, const wire::Task& task) {
    wire::Update u;
    u.kind = kind;
    u.job = task.job;
    u.key = task.key;
    u.attempt = task.attempt;
    return u;
  }

  // Drops the queued `started` of a task that is finishing before it was sent.
  void unqueue_started(std::uint64_t task_id, InFlight& f) {
    if (!f.started_queued) return;
    f.started_queued = false;
    const auto it = std::find_if(pending.begin(), pending.end(), [&](const Pending& p) {
      return p.task_id == task_id && p.update.kind == wire::UpdateKind::started;
    });
    if (it != pending.end()) {
      pending_bytes -= std::min(pending_bytes, it->update.job.size() + it->update.key.size() + 16);
      pending.erase(it);
      coalesced.fetch_add(1);
    }
  }

  // `announce`: send even an empty report, so the sink knows this worker is alive (it counts
  // workers for `topicflow run`, which waits for its workers before submitting).
  void flush(zmq::socket_t& sink, const StopSignal& stop, bool announce = false) {
    if (pending.empty() && !announce) return;
    wire::Report report;
    report.worker = id;
    report.slots = static_cast<std::uint32_t>(cfg.concurrency);
    report.updates.reserve(pending.size());
    for (auto& p : pending) {
      // The task is now reported as started: its result must not try to coalesce any more.
      if (p.update.kind == wire::UpdateKind::started) {
        if (auto it = in_flight.find(p.task_id); it != in_flight.end())
          it->second.started_queued = false;
      }
      report.updates.push_back(std::move(p.update));
    }
    const auto n = pending.size();
    pending.clear();
    pending_bytes = 0;
    const auto bytes = wire::encode(report);
    zmq::message_t msg(bytes.data(), bytes.size());
    const bool sent = send_report(sink, msg, stop);
    if (sent) {
      reports.fetch_add(1);
      updates.fetch_add(n);
    } else {
      spdlog::warn("could not send a report of {} updates to the sink before the shutdown deadline",
                   n);
    }
  }

  // Sends without blocking the loop forever: a full pipe (sink down or slow) is retried until
  // the shutdown deadline; signals (EINTR) are not errors.
  bool send_report(zmq::socket_t& sink, zmq::message_t& msg, const StopSignal& stop) {
    for (;;) {
      try {
        if (sink.send(msg, zmq::send_flags::dontwait)) return true;
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;
      }
      if (steady_ms() >= hard_deadline(stop)) return false;
      zmq::pollitem_t item{sink.handle(), 0, ZMQ_POLLOUT, 0};
      poll_items(&item, 1, 50);
    }
  }

  void finish(std::uint64_t task_id, Outcome outcome) {
    auto it = in_flight.find(task_id);
    if (it == in_flight.end()) return;  // already released at shutdown
    auto& f = it->second;
    const auto elapsed = steady_ms() - f.started_ms;
    if (outcome.ok() && cfg.max_result_bytes >= 0 &&
        outcome.data.size() > static_cast<std::size_t>(cfg.max_result_bytes)) {
      outcome = Outcome::failed("result of " + std::to_string(outcome.data.size()) +
                                    " bytes exceeds --max-result-bytes " +
                                    std::to_string(cfg.max_result_bytes),
                                false);
    }
    if (!outcome.ok() && outcome.data.size() > wire::Limits{}.max_data_bytes) {
      outcome.data.resize(wire::Limits{}.max_data_bytes);
    }
    unqueue_started(task_id, f);
    auto update =
        make_update(outcome.ok() ? wire::UpdateKind::completed : wire::UpdateKind::failed, f.task);
    update.retryable = !outcome.ok() && outcome.retryable;
    update.data = std::move(outcome.data);
    if (outcome.ok()) {
      completed.fetch_add(1);
      spdlog::debug("{}/{} attempt {}: completed in {} ms ({} bytes)", f.task.job, f.task.key,
                    f.task.attempt, elapsed, update.data.size());
    } else {
      failed.fetch_add(1);
      spdlog::debug("{}/{} attempt {}: failed in {} ms ({}): {}", f.task.job, f.task.key,
                    f.task.attempt, elapsed, update.retryable ? "retryable" : "permanent",
                    update.data);
    }
    queue(task_id, std::move(update));
    in_flight.erase(it);
    in_flight_count.store(in_flight.size());
  }

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
      bad_messages.fetch_add(1);
      bad_log.warn("dropped a multipart message from the broker (tasks are one frame)");
      return tasks;
    }
    try {
      auto decoded = wire::decode(msg.to_string_view());
      if (auto* t = std::get_if<wire::Task>(&decoded)) {
        tasks.push_back(std::move(*t));
      } else if (auto* batch = std::get_if<wire::TaskBatch>(&decoded)) {
        tasks = std::move(batch->tasks);
      } else {
        bad_messages.fetch_add(1);
        bad_log.warn("dropped a '" + std::string(wire::type_name(decoded)) +
                     "' message from the broker (expected a task)");
      }
    } catch (const std::exception& e) {
      bad_messages.fetch_add(1);
      bad_log.warn(std::string("dropped an undecodable message from the broker: ") + e.what());
    }
    return tasks;
  }

  // A batch of short tasks is taken whole: the sink sends batches only when a slot runs many
  // tasks per millisecond, so what waits here for a slot is a few milliseconds of work.
  void receive(zmq::message_t& msg, zmq::socket_t& backend, const std::shared_ptr<Pool>& pool) {
    auto tasks = decode_tasks(msg, backend);
    if (tasks.empty()) return;
    {
      std::lock_guard lock(pool->mutex);
      for (auto& task : tasks) {
        received.fetch_add(1);
        const auto task_id = next_task_id++;
        auto token = std::make_shared<CancelToken>(cfg.task_timeout_ms);
        spdlog::debug("{}/{} attempt {}: started", task.job, task.key, task.attempt);
        queue(task_id, make_update(wire::UpdateKind::started, task));
        in_flight.emplace(task_id, InFlight{task, token, steady_ms(), true});
        pool->jobs.push_back(Job{task_id, std::move(task), std::move(token)});
      }
    }
    in_flight_count.store(in_flight.size());
    bump_max(max_in_flight, in_flight.size());
    if (tasks.size() == 1) {
      pool->cv.notify_one();
    } else {
      pool->cv.notify_all();
    }
  }

  // At shutdown: tasks the broker already pushed into this worker's buffers (ZeroMQ pipe and
  // kernel socket buffers, which HWMs do not bound) would be lost with the socket and wait for
  // the sink's dispatch timeout. Read what is already here and give it back as `released`, so
  // the sink redelivers it at once. Bounded in time, since the broker keeps pushing.
  void release_buffered(zmq::socket_t& backend, zmq::socket_t& sink, const StopSignal& stop) {
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
          queue(0, make_update(wire::UpdateKind::released, task));
          released.fetch_add(1);
          ++n;
          // Held until we have left the rotation (below), or the sink could hand them straight
          // back into this connection; only the frame-size bound forces an early send.
          if (pending_bytes >= kFlushBytes) flush(sink, stop);
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
      backend.disconnect(cfg.endpoints.backend);
    } catch (const zmq::error_t& e) {
      spdlog::debug("disconnect {}: {}", cfg.endpoints.backend, e.what());
    }
    take_all();
    if (n > 0)
      spdlog::info("released {} tasks that were buffered for this worker but not started", n);
  }

  void release_all() {
    for (auto& [task_id, f] : in_flight) {
      unqueue_started(task_id, f);
      f.token->cancel();
      queue(task_id, make_update(wire::UpdateKind::released, f.task));
      released.fetch_add(1);
      spdlog::debug("{}/{} attempt {}: released", f.task.job, f.task.key, f.task.attempt);
    }
    in_flight.clear();
    in_flight_count.store(0);
  }

  void run(const StopSignal& stop);
};

Worker::Worker(WorkerConfig config, std::unique_ptr<Handler> handler)
    : impl_(std::make_unique<Impl>()) {
  auto bad = [](const std::string& why) { throw std::invalid_argument(why); };
  if (!handler) bad("no handler");
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
  if (config.id.empty()) config.id = default_worker_id();
  if (config.id.size() > static_cast<std::size_t>(kMaxIdLength))
    bad("--id is longer than 200 bytes");
  impl_->id = config.id;
  impl_->cfg = std::move(config);
  impl_->handler = std::move(handler);
}

Worker::~Worker() = default;

const std::string& Worker::id() const noexcept { return impl_->id; }

WorkerCounters Worker::counters() const noexcept {
  const auto& i = *impl_;
  WorkerCounters c;
  c.received = i.received.load();
  c.completed = i.completed.load();
  c.failed = i.failed.load();
  c.released = i.released.load();
  c.bad_messages = i.bad_messages.load();
  c.reports = i.reports.load();
  c.updates = i.updates.load();
  c.coalesced = i.coalesced.load();
  c.in_flight = i.in_flight_count.load();
  c.max_in_flight = i.max_in_flight.load();
  return c;
}

void Worker::run(const StopSignal& stop) { impl_->run(stop); }

void Worker::Impl::run(const StopSignal& stop) {
  const auto concurrency = static_cast<std::size_t>(cfg.concurrency);
  spdlog::info("worker {} starting: backend {}, sink {}, concurrency {}, handler {}", id,
               cfg.endpoints.backend, cfg.endpoints.sink, cfg.concurrency, handler->describe());

  zmq::context_t ctx(1);
  SocketOptions pull_options;
  pull_options.rcvhwm = 1;  // do not hoard: a task waits in the broker until a slot is free
  auto backend = make_socket(ctx, zmq::socket_type::pull, pull_options);
  backend.set(zmq::sockopt::rcvbuf, kBackendRcvbuf);
  SocketOptions push_options;
  push_options.linger_ms = kSinkLingerMs;
  auto sink = make_socket(ctx, zmq::socket_type::push, push_options);
  connect_socket(backend, "--backend", cfg.endpoints.backend, cfg.security);
  connect_socket(sink, "--sink", cfg.endpoints.sink, cfg.security);

  auto pool = std::make_shared<Pool>(handler);
  PoolThreads threads(pool, concurrency);
  // On an exception below, handlers still running are told to stop before the threads go.
  struct CancelOnUnwind {
    std::unordered_map<std::uint64_t, InFlight>& tasks;
    ~CancelOnUnwind() {
      for (auto& [task_id, f] : tasks) f.token->cancel();
    }
  } cancel_on_unwind{in_flight};

  flush(sink, stop, /*announce=*/true);
  const auto heartbeat_every = std::max<std::int64_t>(1, cfg.lease_ms / 3);
  auto next_heartbeat = steady_ms() + heartbeat_every;
  auto next_rate_log = steady_ms() + kRateLogMs;
  std::uint64_t last_done = 0;
  std::uint64_t last_failed = 0;
  auto last_rate_ms = steady_ms();
  bool stopping = false;

  for (;;) {
    auto now = steady_ms();
    if (!stopping && stop.triggered()) {
      stopping = true;
      hard_deadline(stop);
      spdlog::info("stopping: {} tasks in flight, waiting up to {} ms for them", in_flight.size(),
                   cfg.shutdown_grace_ms);
      release_buffered(backend, sink, stop);
      flush(sink, stop);
    }

    // Outcomes from the handler threads.
    std::deque<Done> done;
    {
      std::lock_guard lock(pool->mutex);
      done.swap(pool->done);
    }
    for (auto& d : done) finish(d.id, std::move(d.outcome));

    if (stopping) {
      if (in_flight.empty()) break;
      if (now >= stop_at + cfg.shutdown_grace_ms) {
        spdlog::info("releasing {} tasks still running after {} ms", in_flight.size(),
                     cfg.shutdown_grace_ms);
        release_all();
        break;
      }
    }

    if (now >= next_heartbeat) {
      for (const auto& [task_id, f] : in_flight) {
        if (!f.started_queued) queue(task_id, make_update(wire::UpdateKind::heartbeat, f.task));
      }
      flush(sink, stop, /*announce=*/true);
      next_heartbeat = now + heartbeat_every;
    }
    if (!pending.empty() && (pending.size() >= kFlushUpdates || pending_bytes >= kFlushBytes ||
                             now - first_pending_ms >= cfg.flush_ms)) {
      flush(sink, stop);
    }
    if (now >= next_rate_log) {
      const auto c = completed.load();
      const auto f = failed.load();
      const auto secs = static_cast<double>(std::max<std::int64_t>(1, now - last_rate_ms)) / 1000.0;
      spdlog::info(
          "{} completed, {} failed in the last {:.0f} s ({:.1f} tasks/s); {} in flight; totals {} "
          "completed, "
          "{} failed, {} bad messages",
          c - last_done, f - last_failed, secs,
          static_cast<double>(c - last_done + f - last_failed) / secs, in_flight.size(), c, f,
          bad_messages.load());
      last_done = c;
      last_failed = f;
      last_rate_ms = now;
      next_rate_log = now + kRateLogMs;
    }

    // Sleep until something happens or the next timer.
    now = steady_ms();
    auto wake_at = std::min(next_heartbeat, next_rate_log);
    if (!pending.empty()) wake_at = std::min(wake_at, first_pending_ms + cfg.flush_ms);
    if (stopping) wake_at = std::min(wake_at, stop_at + cfg.shutdown_grace_ms);
    const bool want_task = !stopping && in_flight.size() < concurrency;
    std::vector<zmq::pollitem_t> items;
    items.push_back({nullptr, pool->wake_fd, ZMQ_POLLIN, 0});
    if (!stopping) items.push_back({nullptr, stop.fd(), ZMQ_POLLIN, 0});
    if (want_task) items.push_back({backend.handle(), 0, ZMQ_POLLIN, 0});
    poll_items(items.data(), items.size(), wake_at - now);

    if (items[0].revents & ZMQ_POLLIN) pool->drain_wake();
    if (want_task && (items.back().revents & ZMQ_POLLIN)) {
      while (in_flight.size() < concurrency && !stop.triggered()) {
        std::optional<zmq::message_t> msg;
        try {
          msg = try_recv(backend);
        } catch (const zmq::error_t& e) {
          if (e.num() != EINTR) throw;
        }
        if (!msg) break;
        receive(*msg, backend, pool);
      }
    }
  }

  flush(sink, stop);

  if (!threads.close())
    spdlog::warn("some handlers ignored cancellation; abandoning their threads");

  spdlog::info("worker {} stopped: {} completed, {} failed, {} released, {} bad messages", id,
               completed.load(), failed.load(), released.load(), bad_messages.load());
}

}  // namespace topicflow
