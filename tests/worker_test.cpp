// Worker core, in-process: the test binds a PUSH (as the broker backend) and a PULL (as the
// sink) on ephemeral loopback ports, runs a Worker on a thread and decodes its reports.
#include <topicflow/clock.hpp>
#include <topicflow/shutdown.hpp>
#include <topicflow/wire.hpp>
#include <topicflow/worker.hpp>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include <pthread.h>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

namespace tf = topicflow;
using tf::wire::UpdateKind;

namespace {

bool terminal(UpdateKind k) {
  return k == UpdateKind::completed || k == UpdateKind::failed || k == UpdateKind::released;
}

std::string show(const std::vector<tf::wire::Update>& updates) {
  std::ostringstream out;
  for (const auto& u : updates)
    out << tf::wire::to_string(u.kind) << "(" << u.key << "#" << u.attempt << ") ";
  return out.str();
}

// A Handler from a lambda, for tests.
class FnHandler final : public tf::Handler {
 public:
  explicit FnHandler(std::function<tf::Outcome(const tf::TaskView&, const tf::CancelToken&)> fn)
      : fn_(std::move(fn)) {}
  tf::Outcome handle(const tf::TaskView& t, const tf::CancelToken& c) override { return fn_(t, c); }
  std::string describe() const override { return "test"; }

 private:
  std::function<tf::Outcome(const tf::TaskView&, const tf::CancelToken&)> fn_;
};

// A gate a test opens: handlers wait at it (bounded, so a broken test cannot hang).
class Gate {
 public:
  void open() {
    {
      const std::lock_guard lock(mutex_);
      open_ = true;
    }
    cv_.notify_all();
  }
  bool wait(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return open_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Waits (at most `timeout_ms`) until `condition` holds; returns whether it did.
bool wait_until(const std::function<bool()>& condition, std::int64_t timeout_ms = 5000) {
  const auto until = tf::steady_ms() + timeout_ms;
  while (!condition()) {
    if (tf::steady_ms() >= until) return false;
    std::this_thread::yield();
  }
  return true;
}

// A broker backend and a sink around one Worker running on its own thread.
class Harness {
 public:
  Harness(tf::WorkerConfig cfg, std::unique_ptr<tf::Handler> handler,
          const tf::Clock& clock = tf::steady_clock())
      : backend_(ctx_, zmq::socket_type::push), sink_(ctx_, zmq::socket_type::pull) {
    backend_.set(zmq::sockopt::linger, 0);
    backend_.set(zmq::sockopt::sndtimeo, 5000);
    sink_.set(zmq::sockopt::linger, 0);
    backend_.bind("tcp://127.0.0.1:*");
    sink_.bind("tcp://127.0.0.1:*");
    cfg.endpoints.backend = backend_.get(zmq::sockopt::last_endpoint);
    cfg.endpoints.sink = sink_.get(zmq::sockopt::last_endpoint);
    if (cfg.id.empty()) cfg.id = "test-worker";
    worker_ = std::make_unique<tf::Worker>(cfg, std::move(handler), clock);
    thread_ = std::thread([this] {
      try {
        worker_->run(stop_);
      } catch (const std::exception& e) {
        error_ = e.what();
      }
      returned_ms_ = tf::steady_ms();
    });
  }
  ~Harness() { stop(); }
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  void push(const std::string& key, std::uint32_t attempt = 1, const std::string& payload = "") {
    push_raw(tf::wire::encode(tf::wire::Task{"job", key, payload, attempt}));
  }
  void push_raw(const std::string& bytes, zmq::send_flags flags = zmq::send_flags::none) {
    zmq::message_t msg(bytes.data(), bytes.size());
    ASSERT_TRUE(backend_.send(msg, flags)) << "the worker did not take a frame within 5 s";
  }

  // Receives reports until `done(updates so far)` or the timeout; returns all updates seen.
  std::vector<tf::wire::Update> collect(
      const std::function<bool(const std::vector<tf::wire::Update>&)>& done,
      std::int64_t timeout_ms = 5000) {
    const auto until = tf::steady_ms() + timeout_ms;
    while (!done(updates_)) {
      const auto left = until - tf::steady_ms();
      if (left <= 0) break;
      zmq::pollitem_t item{sink_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(std::min<std::int64_t>(left, 50)));
      zmq::message_t msg;
      while (sink_.recv(msg, zmq::recv_flags::dontwait)) {
        auto decoded = tf::wire::decode(msg.to_string_view());
        auto* report = std::get_if<tf::wire::Report>(&decoded);
        EXPECT_NE(report, nullptr) << "the worker sent a " << tf::wire::type_name(decoded);
        if (report == nullptr) continue;
        EXPECT_EQ(report->worker, "test-worker") << "worker id in the report";
        if (report->updates.empty()) {
          ++announcements_;  // "I am alive": at start and on every heartbeat tick
          continue;
        }
        ++reports_;
        for (auto& u : report->updates) updates_.push_back(u);
      }
    }
    return updates_;
  }
  // After join(): every report the worker counted as sent.
  std::vector<tf::wire::Update> collect_everything_sent() {
    const auto sent = worker_->counters().reports;
    return collect([&](const auto&) { return reports_ + announcements_ >= sent; });
  }
  std::vector<tf::wire::Update> collect_terminal(std::size_t n, std::int64_t timeout_ms = 5000) {
    return collect([n](const auto& us) { return count(us, terminal) >= n; }, timeout_ms);
  }
  static std::size_t count(const std::vector<tf::wire::Update>& us,
                           const std::function<bool(UpdateKind)>& pred) {
    return static_cast<std::size_t>(
        std::count_if(us.begin(), us.end(), [&](const auto& u) { return pred(u.kind); }));
  }
  static std::size_t count(const std::vector<tf::wire::Update>& us, UpdateKind kind) {
    return count(us, [kind](UpdateKind k) { return k == kind; });
  }

  // Triggers the stop and joins; returns how long run() took to return after the trigger.
  std::int64_t stop() {
    request_stop();
    return join();
  }
  // Triggers the stop without waiting for run() to return (join() does).
  void request_stop() {
    if (stop_requested_ms_ == 0) stop_requested_ms_ = tf::steady_ms();
    stop_.trigger();
  }
  std::int64_t join() {
    if (!thread_.joinable()) return stopped_after_;
    thread_.join();
    stopped_after_ = returned_ms_ - stop_requested_ms_;
    return stopped_after_;
  }
  // Waits until the worker has seen the stop (its grace period runs on its clock from then).
  bool wait_stopping() {
    return wait_until([&] { return worker_->counters().stopping; });
  }

  tf::Worker& worker() { return *worker_; }
  std::thread::native_handle_type thread_handle() { return thread_.native_handle(); }
  const std::string& error() const { return error_; }
  std::size_t reports() const { return reports_; }
  std::size_t announcements() const { return announcements_; }

 private:
  zmq::context_t ctx_;
  zmq::socket_t backend_;
  zmq::socket_t sink_;
  tf::StopSignal stop_;
  std::unique_ptr<tf::Worker> worker_;
  std::thread thread_;
  std::string error_;
  std::atomic<std::int64_t> returned_ms_{0};
  std::int64_t stopped_after_ = 0;
  std::int64_t stop_requested_ms_ = 0;
  std::vector<tf::wire::Update> updates_;
  std::size_t reports_ = 0;
  std::size_t announcements_ = 0;
};

tf::WorkerConfig config(int concurrency = 1) {
  tf::WorkerConfig cfg;
  cfg.concurrency = concurrency;
  cfg.shutdown_grace_ms = 1000;
  return cfg;
}

}  // namespace

TEST(Worker, RejectsBadConfig) {
  auto make = [](tf::WorkerConfig cfg) {
    return tf::Worker(std::move(cfg), tf::make_handler("noop"));
  };
  auto bad_concurrency = config(0);
  EXPECT_THROW(make(bad_concurrency), std::invalid_argument) << "concurrency 0";
  auto bad_lease = config();
  bad_lease.lease_ms = 0;
  EXPECT_THROW(make(bad_lease), std::invalid_argument) << "lease 0";
  auto bad_endpoint = config();
  bad_endpoint.endpoints.backend = "localhost:5558";
  EXPECT_THROW(make(bad_endpoint), std::invalid_argument) << "endpoint without scheme";
  auto big_result = config();
  big_result.max_result_bytes = 64 << 20;
  EXPECT_THROW(make(big_result), std::invalid_argument) << "max result above the wire limit";
  EXPECT_THROW(tf::Worker(config(), nullptr), std::invalid_argument) << "null handler";
}

TEST(Worker, DefaultIdIsHostnameDashPid) {
  tf::Worker w(config(), tf::make_handler("noop"));
  EXPECT_TRUE(w.id().ends_with("-" + std::to_string(::getpid()))) << "id " << w.id();
  EXPECT_GT(w.id().size(), std::to_string(::getpid()).size() + 1) << "id " << w.id();
}

TEST(Worker, EveryTaskGetsExactlyOneTerminalUpdateWithItsAttempt) {
  Harness h(config(3), tf::make_handler("sleep:0-2"));
  const int n = 150;
  for (int i = 0; i < n; ++i)
    h.push("t" + std::to_string(i), static_cast<std::uint32_t>(i % 4 + 1));
  auto updates = h.collect_terminal(n);
  // Stop, then take every report the worker sent, so that a duplicate would be counted.
  EXPECT_LT(h.stop(), 1000) << "stop with nothing in flight";
  updates = h.collect_everything_sent();
  std::map<std::string, int> terminals;
  for (const auto& u : updates) {
    const int i = std::stoi(u.key.substr(1));
    EXPECT_EQ(u.job, "job") << "update " << tf::wire::to_string(u.kind) << " of " << u.key;
    EXPECT_EQ(u.attempt, static_cast<std::uint32_t>(i % 4 + 1)) << "attempt of " << u.key;
    if (terminal(u.kind)) {
      ++terminals[u.key];
      EXPECT_EQ(u.kind, UpdateKind::completed) << u.key;
    }
  }
  EXPECT_EQ(terminals.size(), static_cast<std::size_t>(n)) << "tasks with a terminal update";
  for (const auto& [key, count] : terminals) EXPECT_EQ(count, 1) << "terminal updates of " << key;
  EXPECT_LT(h.reports(), static_cast<std::size_t>(2 * n))
      << "updates should be batched into fewer reports";
  const auto c = h.worker().counters();
  EXPECT_EQ(c.received, static_cast<std::uint64_t>(n));
  EXPECT_EQ(c.completed, static_cast<std::uint64_t>(n));
  EXPECT_LE(c.max_in_flight, 3U);
  EXPECT_EQ(h.error(), "") << "run() threw";
}

TEST(Worker, RunsAtMostConcurrencyHandlersAtOnce) {
  // The first handlers wait until four run at once (at most 2 s): a worker running them one at
  // a time never gets there.
  std::mutex mutex;
  std::condition_variable cv;
  int running = 0;
  int peak = 0;
  auto handler = std::make_unique<FnHandler>([&](const tf::TaskView&, const tf::CancelToken&) {
    std::unique_lock lock(mutex);
    peak = std::max(peak, ++running);
    cv.notify_all();
    cv.wait_for(lock, std::chrono::seconds(2), [&] { return peak >= 4; });
    --running;
    return tf::Outcome::completed("r");
  });
  Harness h(config(4), std::move(handler));
  const int n = 32;
  for (int i = 0; i < n; ++i) h.push("t" + std::to_string(i));
  const auto updates = h.collect_terminal(n);
  EXPECT_EQ(Harness::count(updates, UpdateKind::completed), static_cast<std::size_t>(n))
      << show(updates);
  {
    const std::lock_guard lock(mutex);
    EXPECT_EQ(peak, 4) << "peak concurrent handlers (limit 4)";
  }
  EXPECT_LE(h.worker().counters().max_in_flight, 4U);
  for (const auto& u : updates) {
    if (u.kind == UpdateKind::completed) {
      EXPECT_EQ(u.data, "r") << "result of " << u.key;
    }
  }
}

TEST(Worker, DoesNotHoardTasksWhileBusy) {
  // One slot, a handler held at a gate: while it runs, the worker must not take the next task
  // (pushed right behind it, so a worker that drained its socket would take both at once).
  Gate gate;
  auto handler = std::make_unique<FnHandler>([&](const tf::TaskView&, const tf::CancelToken&) {
    gate.wait();
    return tf::Outcome::completed();
  });
  auto cfg = config(1);
  cfg.flush_ms = 0;  // every update leaves at once, so the order of reports is the order of events
  Harness h(cfg, std::move(handler));
  h.push("a");
  h.push("b");
  h.collect([](const auto& us) { return Harness::count(us, UpdateKind::started) >= 1; });
  EXPECT_EQ(h.worker().counters().received, 1U)
      << "the worker took a second task while its only slot was busy";
  gate.open();
  const auto updates = h.collect_terminal(2);
  ASSERT_EQ(Harness::count(updates, UpdateKind::completed), 2U) << show(updates);
  // b's first update (its start, or its result when the two went out together) comes after a's
  // result: b was taken when a's slot was free, not while a ran.
  const auto first_of_b = std::find_if(updates.begin(), updates.end(),
                                       [](const tf::wire::Update& u) { return u.key == "b"; });
  const auto a_done = std::find_if(updates.begin(), updates.end(), [](const tf::wire::Update& u) {
    return u.key == "a" && u.kind == UpdateKind::completed;
  });
  EXPECT_LT(a_done - updates.begin(), first_of_b - updates.begin()) << show(updates);
}

TEST(Worker, FailuresCarryErrorAndRetryableFlag) {
  auto handler = std::make_unique<FnHandler>([](const tf::TaskView& t, const tf::CancelToken&) {
    if (t.key == "perm") return tf::Outcome::failed("bad input", false);
    if (t.key == "throw") throw std::runtime_error("kaboom");
    return tf::Outcome::failed("try again", true);
  });
  Harness h(config(2), std::move(handler));
  h.push("perm", 2);
  h.push("temp", 5);
  h.push("throw", 1);
  const auto updates = h.collect_terminal(3);
  std::map<std::string, tf::wire::Update> by_key;
  for (const auto& u : updates) {
    if (terminal(u.kind)) by_key[u.key] = u;
  }
  ASSERT_EQ(by_key.size(), 3U) << show(updates);
  EXPECT_EQ(by_key["perm"].kind, UpdateKind::failed);
  EXPECT_FALSE(by_key["perm"].retryable);
  EXPECT_EQ(by_key["perm"].data, "bad input");
  EXPECT_EQ(by_key["perm"].attempt, 2U);
  EXPECT_EQ(by_key["temp"].kind, UpdateKind::failed);
  EXPECT_TRUE(by_key["temp"].retryable);
  EXPECT_EQ(by_key["temp"].data, "try again");
  EXPECT_EQ(by_key["temp"].attempt, 5U);
  EXPECT_TRUE(by_key["throw"].retryable) << "an exception is a retryable failure";
  EXPECT_NE(by_key["throw"].data.find("kaboom"), std::string::npos) << by_key["throw"].data;
  EXPECT_EQ(h.worker().counters().failed, 3U);
}

TEST(Worker, OversizedResultFailsPermanently) {
  auto handler = std::make_unique<FnHandler>([](const tf::TaskView&, const tf::CancelToken&) {
    return tf::Outcome::completed(std::string(2000, 'r'));
  });
  auto cfg = config();
  cfg.max_result_bytes = 1000;
  Harness h(cfg, std::move(handler));
  h.push("big");
  const auto updates = h.collect_terminal(1);
  ASSERT_EQ(Harness::count(updates, terminal), 1U) << show(updates);
  const auto& u = updates.back();
  EXPECT_EQ(u.kind, UpdateKind::failed) << show(updates);
  EXPECT_FALSE(u.retryable);
  EXPECT_NE(u.data.find("--max-result-bytes"), std::string::npos) << u.data;
}

TEST(Worker, StartedIsCoalescedWhenTheResultIsInTheSameReport) {
  tf::ManualClock clock;
  auto cfg = config();
  cfg.flush_ms = 100;  // the report is due 100 ms (of the worker's clock) after its first update
  Harness fast(cfg, tf::make_handler("noop"), clock);
  fast.push("quick");
  ASSERT_TRUE(wait_until([&] { return fast.worker().counters().completed == 1; }))
      << "the noop finished";
  clock.advance(100);
  const auto updates = fast.collect_terminal(1);
  EXPECT_EQ(Harness::count(updates, UpdateKind::started), 0U) << show(updates);
  EXPECT_EQ(Harness::count(updates, UpdateKind::completed), 1U) << show(updates);
  EXPECT_EQ(fast.worker().counters().coalesced, 1U);
  EXPECT_EQ(fast.reports(), 1U) << "one report: the result alone";

  tf::ManualClock slow_clock;
  Gate gate;
  auto handler = std::make_unique<FnHandler>([&](const tf::TaskView&, const tf::CancelToken&) {
    gate.wait();
    return tf::Outcome::completed();
  });
  auto slow_cfg = config();
  slow_cfg.flush_ms = 2;
  Harness slow(slow_cfg, std::move(handler), slow_clock);
  slow.push("slow", 7);
  ASSERT_TRUE(wait_until([&] { return slow.worker().counters().received == 1; }));
  slow_clock.advance(2);  // the `started` is due: it leaves alone
  slow.collect([](const auto& us) { return Harness::count(us, UpdateKind::started) >= 1; });
  gate.open();
  ASSERT_TRUE(wait_until([&] { return slow.worker().counters().completed == 1; }));
  slow_clock.advance(2);
  const auto both = slow.collect_terminal(1);
  ASSERT_EQ(both.size(), 2U) << show(both);
  EXPECT_EQ(both[0].kind, UpdateKind::started) << show(both);
  EXPECT_EQ(both[0].attempt, 7U);
  EXPECT_EQ(both[1].kind, UpdateKind::completed) << show(both);
  EXPECT_EQ(slow.reports(), 2U) << "the start and the result, each when it was due";
  EXPECT_EQ(slow.worker().counters().coalesced, 0U);
}

TEST(Worker, HeartbeatsTasksInFlightEveryThirdOfTheLease) {
  tf::ManualClock clock;
  Gate gate;
  auto handler = std::make_unique<FnHandler>([&](const tf::TaskView&, const tf::CancelToken&) {
    gate.wait();
    return tf::Outcome::completed();
  });
  auto cfg = config(2);
  cfg.lease_ms = 300;  // a heartbeat every 100 ms of the worker's clock
  cfg.flush_ms = 0;
  Harness h(cfg, std::move(handler), clock);
  h.push("a", 2);
  h.push("b", 3);
  h.collect([](const auto& us) { return Harness::count(us, UpdateKind::started) >= 2; });
  for (std::size_t tick = 1; tick <= 3; ++tick) {
    clock.advance(100);
    h.collect(
        [&](const auto& us) { return Harness::count(us, UpdateKind::heartbeat) >= 2 * tick; });
  }
  gate.open();
  const auto updates = h.collect_terminal(2);
  for (const std::string key : {"a", "b"}) {
    int beats = 0;
    for (const auto& u : updates) {
      if (u.key != key || u.kind != UpdateKind::heartbeat) continue;
      ++beats;
      EXPECT_EQ(u.attempt, key == "a" ? 2U : 3U) << "heartbeat attempt of " << key;
    }
    EXPECT_EQ(beats, 3) << "one heartbeat of " << key << " per tick of 100 ms: " << show(updates);
  }
}

TEST(Worker, TaskTimeoutOnTheWorkersClockReachesTheHandler) {
  tf::ManualClock clock;
  auto cfg = config();
  cfg.task_timeout_ms = 60000;  // far beyond the test on the steady clock: only ours can end it
  cfg.flush_ms = 0;             // reports leave at once (the clock moves only when we say)
  Harness h(cfg, tf::make_handler("sleep:120000"), clock);
  h.push("slow");
  ASSERT_TRUE(wait_until([&] { return h.worker().counters().received == 1; }));
  clock.advance(60000);
  const auto updates = h.collect_terminal(1);
  ASSERT_EQ(Harness::count(updates, terminal), 1U) << show(updates);
  EXPECT_EQ(updates.back().kind, UpdateKind::failed) << show(updates);
  EXPECT_TRUE(updates.back().retryable);
  EXPECT_EQ(updates.back().data, "timed out after 60000 ms");
}

TEST(Worker, TaskTimeoutOnTheSteadyClockReachesTheHandler) {
  auto cfg = config();
  cfg.task_timeout_ms = 80;
  Harness h(cfg, tf::make_handler("sleep:5000"));
  h.push("slow");
  const auto updates = h.collect_terminal(1);
  ASSERT_EQ(Harness::count(updates, terminal), 1U) << show(updates);
  EXPECT_EQ(updates.back().kind, UpdateKind::failed) << show(updates);
  EXPECT_EQ(updates.back().data, "timed out after 80 ms");
}

TEST(Worker, GarbageFramesAreDroppedAndCountedAndServingGoesOn) {
  Harness h(config(), tf::make_handler("noop"));
  h.push_raw("this is not msgpack");
  h.push_raw("");
  h.push_raw(tf::wire::encode(tf::wire::Report{"w", {}}));          // valid, but not a task
  h.push_raw(tf::wire::encode(tf::wire::Task{"job", "", "p", 1}));  // empty key: rejected by decode
  h.push_raw(tf::wire::encode(tf::wire::Task{"job", "x", "p", 1}),
             zmq::send_flags::sndmore);  // multipart
  h.push_raw("extra frame");
  h.push("good", 4);
  const auto updates = h.collect_terminal(1);
  ASSERT_EQ(Harness::count(updates, terminal), 1U) << show(updates);
  EXPECT_EQ(updates.back().key, "good") << show(updates);
  EXPECT_EQ(updates.back().attempt, 4U);
  EXPECT_EQ(updates.back().kind, UpdateKind::completed);
  const auto c = h.worker().counters();
  EXPECT_EQ(c.bad_messages, 5U) << "dropped frames";
  EXPECT_EQ(c.received, 1U) << "valid tasks";
  EXPECT_EQ(h.error(), "");
}

TEST(Worker, TaskBatchesAreRunAndReportedLikeSingleTasks) {
  Harness h(config(2), tf::make_handler("noop"));
  tf::wire::TaskBatch batch;
  for (int i = 0; i < 40; ++i)
    batch.tasks.push_back(tf::wire::Task{"job", "b" + std::to_string(i), "p", 3});
  h.push_raw(tf::wire::encode(batch));
  h.push("single", 1);
  const auto updates = h.collect_terminal(41);
  EXPECT_EQ(Harness::count(updates, UpdateKind::completed), 41U) << show(updates);
  std::set<std::string> keys;
  for (const auto& u : updates) {
    if (u.kind != UpdateKind::completed) continue;
    keys.insert(u.key);
    EXPECT_EQ(u.attempt, u.key == "single" ? 1U : 3U) << u.key;
  }
  EXPECT_EQ(keys.size(), 41U) << "every task of the batch exactly once";
  EXPECT_EQ(h.worker().counters().received, 41U);
  EXPECT_EQ(h.error(), "");
}

TEST(Worker, StopReleasesEveryTaskOfABatchNotFinished) {
  auto cfg = config(1);
  cfg.shutdown_grace_ms = 100;
  Harness h(cfg, tf::make_handler("sleep:20000"));
  tf::wire::TaskBatch batch;
  for (int i = 0; i < 5; ++i)
    batch.tasks.push_back(tf::wire::Task{"job", "q" + std::to_string(i), "p", 2});
  h.push_raw(tf::wire::encode(batch));
  h.collect([](const auto& us) { return Harness::count(us, UpdateKind::started) >= 5; });
  h.stop();
  const auto updates = h.collect_terminal(5, 2000);
  EXPECT_EQ(Harness::count(updates, UpdateKind::released), 5U)
      << "one running, four waiting for the slot: " << show(updates);
  EXPECT_EQ(h.worker().counters().released, 5U);
  EXPECT_EQ(h.error(), "");
}

TEST(Worker, StopReleasesTasksStillRunningAfterTheGrace) {
  tf::ManualClock clock;
  auto cfg = config(2);
  cfg.shutdown_grace_ms = 200;
  Harness h(cfg, tf::make_handler("sleep:20000"), clock);
  h.push("a", 1);
  h.push("b", 6);
  h.collect([](const auto& us) { return Harness::count(us, UpdateKind::started) >= 2; });
  h.request_stop();
  ASSERT_TRUE(h.wait_stopping());
  clock.advance(200);  // the grace is over
  EXPECT_LT(h.join(), 2000) << "run() returns once the grace is over (the handlers are cancelled)";
  const auto updates = h.collect_terminal(2, 2000);
  EXPECT_EQ(Harness::count(updates, UpdateKind::released), 2U) << show(updates);
  EXPECT_EQ(Harness::count(updates, UpdateKind::completed), 0U) << show(updates);
  for (const auto& u : updates) {
    if (u.kind == UpdateKind::released) {
      EXPECT_EQ(u.attempt, u.key == "a" ? 1U : 6U) << "released " << u.key;
    }
  }
  EXPECT_EQ(h.worker().counters().released, 2U);
  EXPECT_EQ(h.error(), "");
}

TEST(Worker, StopWaitsForTasksThatFinishWithinTheGrace) {
  // The worker's clock never moves: the grace cannot end, so the tasks must be waited for.
  tf::ManualClock clock;
  Gate gate;
  auto handler = std::make_unique<FnHandler>([&](const tf::TaskView&, const tf::CancelToken&) {
    gate.wait();
    return tf::Outcome::completed();
  });
  auto cfg = config(2);
  cfg.shutdown_grace_ms = 3000;
  Harness h(cfg, std::move(handler), clock);
  h.push("a");
  h.push("b");
  h.collect([](const auto& us) { return Harness::count(us, UpdateKind::started) >= 2; });
  h.request_stop();
  ASSERT_TRUE(h.wait_stopping());
  gate.open();
  EXPECT_LT(h.join(), 2000) << "run() returns as soon as the last handler finishes";
  const auto updates = h.collect_terminal(2, 2000);
  EXPECT_EQ(Harness::count(updates, UpdateKind::completed), 2U) << show(updates);
  EXPECT_EQ(Harness::count(updates, UpdateKind::released), 0U) << show(updates);
}

TEST(Worker, HandlerIgnoringCancellationIsAbandonedInTime) {
  auto handler = std::make_unique<FnHandler>([](const tf::TaskView&, const tf::CancelToken&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // deaf to its token
    return tf::Outcome::completed();
  });
  auto cfg = config();
  cfg.shutdown_grace_ms = 100;
  Harness h(cfg, std::move(handler));
  h.push("deaf");
  h.collect([](const auto& us) { return Harness::count(us, UpdateKind::started) >= 1; });
  const auto ms = h.stop();
  EXPECT_LT(ms, 100 + 1000) << "run() must not wait for a handler that ignores cancellation";
  const auto updates = h.collect_terminal(1, 2000);
  EXPECT_EQ(Harness::count(updates, UpdateKind::released), 1U) << show(updates);
}

TEST(Worker, ExecHandlerResultsReachTheSink) {
  Harness h(config(2), tf::make_handler(R"(exec:printf '%s:' "$TOPICFLOW_KEY"; cat)"));
  h.push("k1", 1, "payload-1");
  h.push("k2", 2, "payload-2");
  const auto updates = h.collect_terminal(2);
  std::map<std::string, std::string> results;
  for (const auto& u : updates) {
    if (u.kind == UpdateKind::completed) results[u.key] = u.data;
  }
  EXPECT_EQ(results["k1"], "k1:payload-1") << show(updates);
  EXPECT_EQ(results["k2"], "k2:payload-2") << show(updates);
}

TEST(Worker, SignalsInterruptingPollAreNotErrors) {
  // SIGTERM reaches a poll() as EINTR; cppzmq turns that into an exception that must not end run().
  struct sigaction sa {};
  sa.sa_handler = [](int) {};
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: poll returns EINTR
  struct sigaction old {};
  ASSERT_EQ(::sigaction(SIGUSR1, &sa, &old), 0);
  Harness h(config(), tf::make_handler("noop"));
  h.push("before");
  h.collect_terminal(1);
  for (int i = 0; i < 5; ++i) {
    ::pthread_kill(h.thread_handle(), SIGUSR1);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  h.push("after");
  const auto updates = h.collect_terminal(2);
  EXPECT_EQ(Harness::count(updates, UpdateKind::completed), 2U) << show(updates);
  h.stop();
  EXPECT_EQ(h.error(), "") << "run() threw after a signal";
  ::sigaction(SIGUSR1, &old, nullptr);
}

TEST(Worker, StopGivesBackTasksBufferedButNotStarted) {
  // ZeroMQ HWMs do not bound what sits in socket buffers: tasks pushed to a busy worker wait
  // there. At shutdown the worker must report them released so the sink redelivers them now.
  auto cfg = config(1);
  cfg.shutdown_grace_ms = 100;
  Harness h(cfg, tf::make_handler("sleep:20000"));
  for (std::uint32_t i = 1; i <= 5; ++i) h.push("t" + std::to_string(i), i);
  // The other four were pushed before the first one's start came back through the worker: they
  // are in its buffers (or on their way, which the shutdown's drain waits for).
  h.collect([](const auto& us) { return Harness::count(us, UpdateKind::started) >= 1; });
  EXPECT_EQ(h.worker().counters().received, 1U) << "only one slot: only one task may be taken";
  const auto ms = h.stop();
  EXPECT_LT(ms, 100 + 1000) << "run() must return within grace + ~1 s";
  const auto updates = h.collect_terminal(5, 2000);
  EXPECT_EQ(Harness::count(updates, UpdateKind::released), 5U) << show(updates);
  EXPECT_EQ(Harness::count(updates, UpdateKind::started), 1U) << show(updates);
  for (const auto& u : updates) {
    EXPECT_EQ("t" + std::to_string(u.attempt), u.key)
        << "attempt of " << tf::wire::to_string(u.kind) << " " << u.key;
  }
  EXPECT_EQ(h.worker().counters().released, 5U);
}

TEST(Worker, AnnouncesItselfToTheSinkBeforeAnyTask) {
  Harness h(config(1), tf::make_handler("noop"));
  h.collect([&](const auto&) { return h.announcements() > 0; }, 3000);
  EXPECT_GE(h.announcements(), 1u) << "an idle worker says it is alive, so the sink can count it";
}
