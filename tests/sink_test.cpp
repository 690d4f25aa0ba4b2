#include <topicflow/clock.hpp>
#include <topicflow/sink.hpp>
#include <topicflow/sqlite.hpp>
#include <topicflow/store.hpp>
#include <topicflow/wire.hpp>

#include "support/full_disk_vfs.hpp"
#include "support/http.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <random>
#include <thread>

namespace topicflow {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir() {
  auto dir = fs::temp_directory_path() / ("topicflow-sink-test-" + std::to_string(::getpid()) +
                                          "-" + std::to_string(std::random_device{}()));
  fs::create_directories(dir);
  return dir;
}

// A sink on its own thread, with the test playing broker frontend, workers and producer.
class SinkHarness {
 public:
  explicit SinkHarness(SinkConfig cfg = {}, std::uint32_t slots = 1000,
                       const Clock* clock = nullptr)
      : dir_(temp_dir()), announce_slots_(slots), clock_(clock) {
    frontend_.set(zmq::sockopt::linger, 0);
    frontend_.bind("tcp://127.0.0.1:*");
    cfg.db = (dir_ / "t.db").string();
    cfg.endpoints.frontend = frontend_.get(zmq::sockopt::last_endpoint);
    cfg.endpoints.sink = "tcp://127.0.0.1:*";
    cfg.endpoints.events = "tcp://127.0.0.1:*";
    cfg_ = cfg;
    start();
  }
  ~SinkHarness() {
    stop();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void start() {
    sink_ = std::make_unique<Sink>(cfg_, &ctx_, clock_);
    stop_ = std::make_unique<StopSignal>();
    push_ = zmq::socket_t(ctx_, zmq::socket_type::push);
    push_.set(zmq::sockopt::linger, 0);
    push_.connect(sink_->sink_endpoint());
    sub_ = zmq::socket_t(ctx_, zmq::socket_type::sub);
    sub_.set(zmq::sockopt::linger, 0);
    sub_.set(zmq::sockopt::subscribe, "");
    sub_.connect(sink_->events_endpoint());
    thread_ = std::thread([this] { sink_->run(*stop_); });
    handshake();
    if (announce_slots_ > 0) send(wire::Report{"harness-worker", {}, announce_slots_});
  }

  // Workers announce their slots; the sink sizes its dispatch window from them.
  void announce_slots(std::uint32_t slots) { announce_slots_ = slots; }

  void stop() {
    if (!thread_.joinable()) return;
    stop_->trigger();
    thread_.join();
    last_counters_ = sink_->counters();
    push_.close();
    sub_.close();
    sink_.reset();
  }

  void send(const wire::Message& m) {
    zmq::message_t msg(wire::encode(m));
    ASSERT_TRUE(push_.send(msg, zmq::send_flags::none));
  }
  void send_raw(std::string_view bytes) {
    zmq::message_t msg(bytes.data(), bytes.size());
    ASSERT_TRUE(push_.send(msg, zmq::send_flags::none));
  }

  // Waits for an event matching `pred` (up to timeout).
  template <typename T, typename Pred>
  std::optional<T> wait_event(Pred pred, int timeout_ms = 5000) {
    const auto deadline = steady_ms() + timeout_ms;
    while (steady_ms() < deadline) {
      zmq::pollitem_t item{sub_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(50));
      zmq::message_t topic, body;
      while (sub_.recv(topic, zmq::recv_flags::dontwait)) {
        (void)sub_.recv(body, zmq::recv_flags::none);
        auto m = wire::decode(body.to_string_view());
        if (auto* t = std::get_if<T>(&m); t != nullptr && pred(*t)) return *t;
      }
    }
    return std::nullopt;
  }

  std::vector<wire::Task> tasks(std::size_t n, int timeout_ms = 5000) {
    std::vector<wire::Task> out;
    const auto deadline = steady_ms() + timeout_ms;
    while (out.size() < n && steady_ms() < deadline) {
      zmq::pollitem_t item{frontend_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(50));
      zmq::message_t msg;
      while (frontend_.recv(msg, zmq::recv_flags::dontwait)) {
        auto m = wire::decode(msg.to_string_view());
        if (auto* batch = std::get_if<wire::TaskBatch>(&m)) {
          for (auto& t : batch->tasks) out.push_back(std::move(t));
        } else {
          out.push_back(std::get<wire::Task>(m));
        }
      }
    }
    return out;
  }

  // Returns once the sink has taken every message sent before (they come through one socket, in
  // order, and the sink answers a hello when it reads it).
  void sync() {
    const auto client = "sync-" + std::to_string(++syncs_);
    send(wire::Hello{client, ""});
    ASSERT_TRUE(wait_event<wire::Ack>([&](const wire::Ack& a) {
      return a.kind == wire::AckKind::hello && a.client == client;
    })) << "the sink did not answer a hello";
  }

  // While the sink runs (thread-safe): its counters as of its last published snapshot.
  SinkCounters published_counters() const { return sink_->published_counters(); }

  void handshake() {
    for (int i = 0; i < 100; ++i) {
      send(wire::Hello{"harness", ""});
      if (wait_event<wire::Ack>([](const wire::Ack& a) { return a.kind == wire::AckKind::hello; },
                                100))
        return;
    }
    FAIL() << "sink did not answer hello";
  }

  wire::Progress progress_until(const std::string& job,
                                std::function<bool(const wire::Progress&)> pred,
                                int timeout_ms = 10000) {
    const auto deadline = steady_ms() + timeout_ms;
    wire::Progress last;
    while (steady_ms() < deadline) {
      send(wire::Hello{"harness", job});
      if (auto p = wait_event<wire::Progress>([&](const wire::Progress& x) { return x.job == job; },
                                              100)) {
        last = *p;
        if (pred(last)) return last;
      }
    }
    ADD_FAILURE() << "progress of " << job << " never matched; last: pending=" << last.pending
                  << " running=" << last.running << " completed=" << last.completed
                  << " failed=" << last.failed;
    return last;
  }

  wire::Submit submit(const std::string& job, int n, std::uint32_t seq = 0,
                      const std::string& submission = "s1") {
    wire::Submit s{job, submission, seq, false, {}};
    for (int i = 0; i < n; ++i)
      s.items.push_back({"key-" + std::to_string(i), "payload-" + std::to_string(i)});
    return s;
  }

  sqlite::Database db() { return sqlite::Database(cfg_.db, sqlite::OpenMode::read_only); }
  std::string status_of(const std::string& job, const std::string& key,
                        std::int64_t* attempts = nullptr) {
    auto d = db();
    auto s = d.prepare("SELECT status, attempts FROM topics WHERE job = ?1 AND key = ?2");
    s.bind(1, job).bind(2, key);
    if (!s.step()) return "missing";
    if (attempts != nullptr) *attempts = s.column_int(1);
    return std::string(s.column_text(0));
  }

  SinkConfig& config() { return cfg_; }
  SinkCounters counters() const { return last_counters_; }

 private:
  fs::path dir_;
  std::uint32_t announce_slots_ = 0;
  const Clock* clock_ = nullptr;
  int syncs_ = 0;
  zmq::context_t ctx_{1};
  zmq::socket_t frontend_{ctx_, zmq::socket_type::pull};
  zmq::socket_t push_;
  zmq::socket_t sub_;
  SinkConfig cfg_;
  std::unique_ptr<Sink> sink_;
  std::unique_ptr<StopSignal> stop_;
  std::thread thread_;
  SinkCounters last_counters_;
};

wire::Report report(std::initializer_list<wire::Update> updates) {
  return wire::Report{"w1", std::vector<wire::Update>(updates), 1000};
}
wire::Update upd(wire::UpdateKind kind, const wire::Task& t, std::string data = {},
                 bool retryable = false) {
  return wire::Update{kind, t.job, t.key, t.attempt, retryable, std::move(data)};
}

TEST(Sink, SubmitIsAckedAndDispatched) {
  SinkHarness h;
  h.send(h.submit("j", 10));
  auto ack =
      h.wait_event<wire::Ack>([](const wire::Ack& a) { return a.kind == wire::AckKind::submit; });
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->accepted, 10u);
  auto tasks = h.tasks(10);
  ASSERT_EQ(tasks.size(), 10u);
  for (const auto& t : tasks) {
    EXPECT_EQ(t.attempt, 1u) << t.key;
    EXPECT_EQ(t.payload, "payload-" + t.key.substr(4)) << t.key;
  }
}

TEST(Sink, CompletesAJobAndPublishesProgress) {
  SinkHarness h;
  h.send(h.submit("j", 50));
  auto tasks = h.tasks(50);
  ASSERT_EQ(tasks.size(), 50u);
  wire::Report r{"w1", {}, 1000};
  for (const auto& t : tasks) {
    r.updates.push_back(upd(wire::UpdateKind::started, t));
    r.updates.push_back(upd(wire::UpdateKind::completed, t, "done " + t.key));
  }
  h.send(r);
  auto p = h.progress_until("j", [](const wire::Progress& x) { return x.completed == 50; });
  EXPECT_EQ(p.pending + p.running + p.failed, 0u);
  h.stop();
  auto db = h.db();
  auto counts = store::read_counts(db, "j");
  ASSERT_EQ(counts.size(), 1u);
  EXPECT_EQ(counts[0].count(store::Status::completed), 50u);
  auto s = db.prepare("SELECT result FROM topics WHERE job='j' AND key='key-7'");
  ASSERT_TRUE(s.step());
  EXPECT_EQ(s.column_blob(0), "done key-7");
}

TEST(Sink, ReorderedMessagesNeverMoveBackwards) {
  SinkHarness h;
  h.send(h.submit("j", 1));
  auto tasks = h.tasks(1);
  ASSERT_EQ(tasks.size(), 1u);
  const auto& t = tasks[0];
  h.send(report({upd(wire::UpdateKind::completed, t, "r")}));
  h.progress_until("j", [](const wire::Progress& x) { return x.completed == 1; });
  // late started, heartbeat, failure and a duplicate result, in separate batches
  h.send(report({upd(wire::UpdateKind::started, t)}));
  h.send(report({upd(wire::UpdateKind::heartbeat, t)}));
  h.send(report({upd(wire::UpdateKind::failed, t, "late", true)}));
  h.send(report({upd(wire::UpdateKind::completed, t, "again")}));
  h.sync();  // all taken; stopping commits them
  h.stop();
  std::int64_t attempts = 0;
  EXPECT_EQ(h.status_of("j", "key-0", &attempts), "completed");
  EXPECT_EQ(attempts, 1);
  EXPECT_EQ(h.counters().duplicates, 1u);
  EXPECT_GE(h.counters().stale, 3u);
}

// The SQL guard alone, with the state machine out of the way: another connection moves rows
// behind the sink's back (its cache still says "in transit, attempt 1"), so the state machine
// decides to write, and only the WHERE clause of the UPDATE can refuse. Fails if the guard of the
// statements that write completions and `running` is dropped.
TEST(Sink, SqlGuardRefusesWritesTheStateMachineGotWrong) {
  SinkHarness h;
  h.send(h.submit("j", 4));
  auto tasks = h.tasks(4);
  ASSERT_EQ(tasks.size(), 4u);
  std::map<std::string, wire::Task> by_key;
  for (const auto& t : tasks) by_key[t.key] = t;
  {
    sqlite::Database other(h.config().db, sqlite::OpenMode::read_write);
    other.busy_timeout(5000);
    other.exec("UPDATE topics SET status = 'completed', result = 'external' WHERE key = 'key-0'");
    other.exec("UPDATE topics SET attempts = 7 WHERE key = 'key-1'");
    other.exec("UPDATE topics SET status = 'failed', error = 'external' WHERE key = 'key-2'");
  }
  h.send(report({upd(wire::UpdateKind::completed, by_key["key-0"], "late"),
                 upd(wire::UpdateKind::started, by_key["key-1"]),
                 upd(wire::UpdateKind::completed, by_key["key-2"], "late"),
                 upd(wire::UpdateKind::completed, by_key["key-3"], "ok")}));
  h.progress_until("j", [](const wire::Progress& x) { return x.completed >= 1; });
  h.stop();
  EXPECT_EQ(h.counters().guard_refused, 3u);
  std::int64_t attempts = 0;
  EXPECT_EQ(h.status_of("j", "key-0"), "completed");
  EXPECT_EQ(h.status_of("j", "key-1", &attempts), "pending") << "a stale `started` must not run it";
  EXPECT_EQ(attempts, 7) << "attempts never go down";
  EXPECT_EQ(h.status_of("j", "key-2"), "failed") << "a failed row changes only by a requeue";
  EXPECT_EQ(h.status_of("j", "key-3"), "completed");
  auto db = h.db();
  auto s = db.prepare("SELECT result FROM topics WHERE job = 'j' AND key = 'key-0'");
  ASSERT_TRUE(s.step());
  EXPECT_EQ(s.column_blob(0), "external") << "a completed row never changes";
}

TEST(Sink, ResubmissionSkipsCompleted) {
  SinkHarness h;
  h.send(h.submit("j", 3));
  auto tasks = h.tasks(3);
  ASSERT_EQ(tasks.size(), 3u);
  h.send(report(
      {upd(wire::UpdateKind::completed, tasks[0]), upd(wire::UpdateKind::completed, tasks[1])}));
  h.progress_until("j", [](const wire::Progress& x) { return x.completed == 2; });
  h.send(h.submit("j", 3, 0, "s2"));
  auto ack = h.wait_event<wire::Ack>(
      [](const wire::Ack& a) { return a.kind == wire::AckKind::submit && a.client == "s2"; });
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->skipped_completed, 2u);
  EXPECT_EQ(ack->already_queued, 1u);
  EXPECT_EQ(ack->accepted, 0u);
  // (dispatch follows the commit that acked, before the sink reads another message)
  h.sync();
  h.stop();
  EXPECT_EQ(h.counters().dispatched, 3u) << "nothing is dispatched again";
}

TEST(Sink, DuplicateKeysEndAsOneRow) {
  SinkHarness h;
  wire::Submit s{"j", "s1", 0, false, {{"a", "1"}, {"b", "2"}, {"a", "3"}}};
  h.send(s);
  auto ack =
      h.wait_event<wire::Ack>([](const wire::Ack& a) { return a.kind == wire::AckKind::submit; });
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->accepted, 2u);
  EXPECT_EQ(ack->duplicates, 1u);
  EXPECT_EQ(h.tasks(2).size(), 2u);
}

TEST(Sink, RetryableFailuresAreRetriedThenFailed) {
  SinkConfig cfg;
  cfg.max_attempts = 3;
  cfg.retry_base_ms = 10;
  cfg.retry_max_ms = 50;
  SinkHarness h(cfg);
  h.send(h.submit("j", 1));
  for (std::uint32_t attempt = 1; attempt <= 3; ++attempt) {
    auto tasks = h.tasks(1);
    ASSERT_EQ(tasks.size(), 1u) << "attempt " << attempt;
    EXPECT_EQ(tasks[0].attempt, attempt);
    h.send(
        report({upd(wire::UpdateKind::started, tasks[0]),
                upd(wire::UpdateKind::failed, tasks[0], "boom " + std::to_string(attempt), true)}));
  }
  h.progress_until("j", [](const wire::Progress& x) { return x.failed == 1; });
  h.stop();
  std::int64_t attempts = 0;
  EXPECT_EQ(h.status_of("j", "key-0", &attempts), "failed");
  EXPECT_EQ(attempts, 3);
  EXPECT_EQ(h.counters().retried, 2u);
}

TEST(Sink, ExpiredLeaseIsRedeliveredWithNextAttempt) {
  ManualClock clock;
  SinkConfig cfg;
  cfg.lease_ms = 200;
  cfg.batch_delay_ms = 0;
  SinkHarness h(cfg, 1000, &clock);
  h.send(h.submit("j", 1));
  auto first = h.tasks(1);
  ASSERT_EQ(first.size(), 1u);
  h.send(report({upd(wire::UpdateKind::started, first[0])}));
  h.progress_until("j", [](const wire::Progress& x) { return x.running == 1; });
  clock.advance(200);  // no heartbeat: the lease expires
  auto second = h.tasks(1);
  ASSERT_EQ(second.size(), 1u) << "redelivery after lease expiry";
  EXPECT_EQ(second[0].attempt, 2u);
  h.send(report({upd(wire::UpdateKind::completed, second[0])}));
  h.progress_until("j", [](const wire::Progress& x) { return x.completed == 1; });
}

TEST(Sink, NewBrokerInstanceRedeliversTasksInTransit) {
  SinkHarness h;
  h.send(wire::BrokerHello{"b1"});
  h.send(h.submit("j", 5));
  ASSERT_EQ(h.tasks(5).size(), 5u);
  h.send(wire::BrokerHello{"b1"});  // the same broker again: nothing is resent ...
  h.send(wire::BrokerHello{"b2"});  // ... a new one lost its queue: every task in transit is
  auto again = h.tasks(5);
  EXPECT_EQ(again.size(), 5u) << "a new broker lost its queue: every task in transit is resent";
  for (const auto& t : again) EXPECT_EQ(t.attempt, 1u);
  h.sync();
  h.stop();
  EXPECT_EQ(h.counters().redelivered, 5u) << "resent once, for b2, not for b1's repeated hello";
  EXPECT_EQ(h.counters().dispatched, 10u);
}

// A task in transit is in the sink's memory only (its row keeps the previous attempt). Lost in
// a dead worker's buffers, it is sent again with the same attempt after the dispatch timeout;
// a late report of the first delivery still counts.
TEST(Sink, TaskNeverStartedIsResentAfterTheDispatchTimeout) {
  ManualClock clock;
  SinkConfig cfg;
  cfg.dispatch_timeout_ms = 300;
  cfg.batch_delay_ms = 0;  // (commits need no time to pass: the test moves the clock itself)
  SinkHarness h(cfg, 1000, &clock);
  h.send(h.submit("j", 3));
  auto first = h.tasks(3);
  ASSERT_EQ(first.size(), 3u);
  std::int64_t attempts = -1;
  EXPECT_EQ(h.status_of("j", first[0].key, &attempts), "pending");
  EXPECT_EQ(attempts, 0) << "the attempt in transit is written with its first report";
  h.send(report({upd(wire::UpdateKind::completed, first[0])}));
  h.progress_until("j", [](const wire::Progress& x) { return x.completed == 1; });
  clock.advance(299);
  h.sync();
  clock.advance(1);  // the transit timeout (at most --dispatch-timeout-ms) has passed
  auto again = h.tasks(2);
  ASSERT_EQ(again.size(), 2u) << "the two never started come back";
  for (const auto& t : again) {
    EXPECT_NE(t.key, first[0].key);
    EXPECT_EQ(t.attempt, 1u) << "same attempt: it was never started";
  }
  h.send(report(
      {upd(wire::UpdateKind::started, first[1]), upd(wire::UpdateKind::completed, again[1])}));
  h.progress_until("j", [](const wire::Progress& x) { return x.completed == 2 && x.running == 1; });
  clock.advance(10000);  // far past any transit timeout, within the lease
  h.send(h.submit("sentinel", 1));
  const auto sentinel = h.tasks(1);  // the loop ran its timers at the new time before this
  ASSERT_EQ(sentinel.size(), 1u);
  EXPECT_EQ(sentinel[0].job, "sentinel") << "a started task is not resent by the transit timeout";
  h.sync();
  h.stop();
  EXPECT_EQ(h.counters().redelivered, 2u);
  EXPECT_EQ(h.counters().transit_resent, 2u);
  EXPECT_EQ(h.counters().guard_refused, 0u);
}

// A sink stopped with tasks in transit: the next one sends them again with the same attempt and
// still takes the reports of the first deliveries.
TEST(Sink, RestartResendsTasksInTransitWithTheSameAttempt) {
  SinkHarness h;
  h.send(h.submit("j", 2));
  auto first = h.tasks(2);
  ASSERT_EQ(first.size(), 2u);
  h.stop();
  h.start();
  auto again = h.tasks(2, 3000);
  ASSERT_EQ(again.size(), 2u);
  for (const auto& t : again) EXPECT_EQ(t.attempt, 1u);
  h.send(report(
      {upd(wire::UpdateKind::completed, first[0]), upd(wire::UpdateKind::started, first[1])}));
  h.progress_until("j", [](const wire::Progress& x) { return x.completed == 1 && x.running == 1; });
  h.send(report(
      {upd(wire::UpdateKind::completed, again[0]), upd(wire::UpdateKind::completed, again[1])}));
  h.progress_until("j", [](const wire::Progress& x) { return x.completed == 2; });
  std::int64_t attempts = -1;
  EXPECT_EQ(h.status_of("j", first[1].key, &attempts), "completed");
  EXPECT_EQ(attempts, 1);
}

TEST(Sink, GarbageIsCountedAndDropped) {
  SinkHarness h;
  h.send_raw("");
  h.send_raw("hello world");
  h.send_raw(std::string("\x93\x01\x63\x00", 4));
  h.send_raw(std::string("\xdd\xff\xff\xff\xff", 5));
  h.send(wire::Task{"j", "k", "p", 1});  // valid, but not for the sink
  h.send(h.submit("j", 2));
  EXPECT_EQ(h.tasks(2).size(), 2u) << "still serving";
  h.stop();
  EXPECT_EQ(h.counters().decode_errors, 5u);
}

TEST(Sink, RestartResumesUnfinishedTopics) {
  SinkConfig cfg;
  cfg.lease_ms = 300;
  SinkHarness h(cfg);
  h.send(h.submit("j", 2));
  auto tasks = h.tasks(2);
  ASSERT_EQ(tasks.size(), 2u);
  h.send(report(
      {upd(wire::UpdateKind::started, tasks[0]), upd(wire::UpdateKind::completed, tasks[1])}));
  h.progress_until("j", [](const wire::Progress& x) { return x.completed == 1 && x.running == 1; });
  h.stop();
  h.start();  // same DB: the running topic's lease expires and it is redelivered
  auto again = h.tasks(1, 3000);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].key, tasks[0].key);
  EXPECT_EQ(again[0].attempt, 2u);
}

TEST(Sink, BusyDatabaseDelaysButLosesNothing) {
  SinkConfig cfg;
  cfg.busy_base_ms = 5;
  cfg.busy_max_ms = 50;
  SinkHarness h(cfg);
  {
    sqlite::Database blocker(h.config().db);
    blocker.exec("BEGIN IMMEDIATE");
    h.send(h.submit("j", 20));
    // The sink tried to commit twice and was refused: it holds the topics and has sent nothing
    // (a task goes out only after its row is committed).
    const auto deadline = steady_ms() + 10000;
    while (h.published_counters().busy_retries < 2 && steady_ms() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_GE(h.published_counters().busy_retries, 2u) << "the sink never met the lock";
    EXPECT_TRUE(h.tasks(1, 20).empty()) << "nothing dispatched while the lock is held";
    blocker.exec("COMMIT");
  }
  EXPECT_EQ(h.tasks(20).size(), 20u);
  h.stop();
  EXPECT_GT(h.counters().busy_retries, 0u);
  auto db = h.db();
  EXPECT_EQ(store::read_counts(db, "j").at(0).total(), 20u);
}

// A full disk, injected under SQLite (support/full_disk_vfs.hpp: every write fails with
// SQLITE_FULL while it is set): the sink keeps the batch and waits, says why (/healthz 503 with
// the reason, the metric), dispatches nothing it has not committed, and once writes succeed
// again commits everything it held. Fault tests do the same on a real tmpfs where they may.
TEST(Sink, AFullDiskIsAWaitNotACrash) {
  testing::FullDiskVfs::install();
  SinkConfig cfg;
  cfg.busy_base_ms = 5;
  cfg.busy_max_ms = 50;
  cfg.http_port = testing::free_port();
  SinkHarness h(cfg);
  testing::FullDiskVfs::full = true;
  h.send(h.submit("j", 20));
  const auto deadline = steady_ms() + 10000;
  while (h.published_counters().unavailable_retries < 2 && steady_ms() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GE(h.published_counters().unavailable_retries, 2u) << "the sink never met the full disk";
  const auto health = testing::http_get(cfg.http_port, "/healthz");
  EXPECT_EQ(health.status, 503) << health.body;
  EXPECT_NE(health.body.find("full"), std::string::npos) << health.body;
  EXPECT_EQ(testing::metric(testing::http_get(cfg.http_port, "/metrics").body,
                            "topicflow_sink_database_unavailable"),
            1);
  EXPECT_TRUE(h.tasks(1, 20).empty()) << "nothing dispatched while nothing is committed";
  testing::FullDiskVfs::full = false;
  EXPECT_EQ(h.tasks(20).size(), 20u) << "committed and dispatched once space returned";
  EXPECT_EQ(testing::http_get(cfg.http_port, "/healthz").status, 200);
  h.stop();
  auto db = h.db();
  EXPECT_EQ(store::read_counts(db, "j").at(0).total(), 20u);
  auto check = db.prepare("PRAGMA integrity_check");
  ASSERT_TRUE(check.step());
  EXPECT_EQ(check.column_text(0), "ok");
}

TEST(Sink, RequeueFailedGivesFreshAttempts) {
  SinkConfig cfg;
  cfg.max_attempts = 1;
  SinkHarness h(cfg);
  h.send(h.submit("j", 2));
  auto tasks = h.tasks(2);
  ASSERT_EQ(tasks.size(), 2u);
  h.send(report({upd(wire::UpdateKind::failed, tasks[0], "x", true),
                 upd(wire::UpdateKind::failed, tasks[1], "y", false)}));
  h.progress_until("j", [](const wire::Progress& x) { return x.failed == 2; });
  h.send(wire::Requeue{"op", "j"});
  auto ack =
      h.wait_event<wire::Ack>([](const wire::Ack& a) { return a.kind == wire::AckKind::requeue; });
  ASSERT_TRUE(ack);
  EXPECT_EQ(ack->requeued, 2u);
  auto again = h.tasks(2);
  ASSERT_EQ(again.size(), 2u);
  // a fresh budget (max_attempts 1: one more try each), with the next attempt number
  for (const auto& t : again) EXPECT_EQ(t.attempt, 2u);
  h.send(report({upd(wire::UpdateKind::failed, again[0], "x", true),
                 upd(wire::UpdateKind::completed, again[1])}));
  h.progress_until("j", [](const wire::Progress& x) { return x.failed == 1 && x.completed == 1; });
}

TEST(Sink, DispatchWindowBoundsTasksInTransit) {
  SinkConfig cfg;
  cfg.dispatch_window = 10;
  SinkHarness h(cfg);
  h.send(h.submit("j", 100));
  auto first = h.tasks(100, 500);
  EXPECT_EQ(first.size(), 10u);
  wire::Report r{"w1", {}, 1000};
  for (const auto& t : first) r.updates.push_back(upd(wire::UpdateKind::completed, t));
  h.send(r);
  EXPECT_EQ(h.tasks(10).size(), 10u) << "completions free the window";
}

}  // namespace
}  // namespace topicflow

namespace topicflow {
namespace {

TEST(Sink, DispatchWindowFollowsWorkerSlots) {
  SinkHarness h(SinkConfig{}, /*slots=*/2);
  h.send(h.submit("j", 100));
  auto first = h.tasks(100, 500);
  EXPECT_EQ(first.size(), 2u) << "one task per worker slot, not all 100 into one worker's buffers";
  h.send(wire::Report{"w2", {}, 20});
  EXPECT_EQ(h.tasks(100, 500).size(), 22u - 2u)
      << "a second worker with 20 slots widens the window to 22";
}

}  // namespace
}  // namespace topicflow
