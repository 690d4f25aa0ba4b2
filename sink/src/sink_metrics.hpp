#pragma once
// The sink's metrics: counters kept by the loop, and the snapshot that /metrics and /healthz
// render from another thread.
//
// One scrape shows one moment: the loop publishes a whole Snapshot (counters, gauges, per-job
// counts and histograms together) under a mutex after every commit and at least every
// kRefreshMs, and the HTTP thread renders only what was published. So counters, gauges and
// histograms always agree, and the snapshot is never older than the last commit.

#include <topicflow/metrics.hpp>
#include <topicflow/sink.hpp>
#include <topicflow/store.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace topicflow::sink {

// A histogram owned by one thread (copied into snapshots; see Histogram for a shared one).
struct Buckets {
  std::vector<double> bounds;
  std::vector<std::uint64_t> counts;  // per bound (not cumulative)
  std::uint64_t overflow = 0;
  double sum = 0.0;

  explicit Buckets(std::vector<double> b) : bounds(std::move(b)), counts(bounds.size()) {}
  void observe(double value);
  [[nodiscard]] std::uint64_t count() const;
};

// A worker as the sink knows it (GET /v1/workers).
struct WorkerInfo {
  std::string id;
  std::uint32_t slots = 0;
  std::uint64_t running = 0;       // topics recorded running on it
  std::int64_t last_heard_ms = 0;  // steady ms
};

// What the sink publishes for other threads (metrics, health, the HTTP API's live views).
struct Snapshot {
  std::uint64_t version = 0;  // +1 per publication
  std::int64_t wall_ms = 0;   // when it was published
  std::int64_t steady_ms =
      0;  // ... on the sink's steady clock (health and ages are relative to it)
  SinkCounters counters;
  std::map<std::string, store::StatusCounts, std::less<>> counts;  // per job
  std::set<std::string, std::less<>> paused;                       // paused jobs
  std::vector<WorkerInfo> workers_seen;
  std::int64_t in_transit = 0;
  std::uint64_t buffered = 0;
  std::uint64_t workers = 0;
  std::uint64_t curve_refused = 0;
  // The database refuses commits (busy, full, I/O error) since this steady ms (0: it does not).
  std::int64_t unavailable_since_ms = 0;
  std::string unavailable_reason;
  bool unavailable_busy = false;  // merely busy (another writer), not full or failing
  bool synchronous_full = true;   // --synchronous full: an fsync per commit
  std::int64_t transit_timeout_ms = 0;
  Buckets batch_size{{1, 10, 100, 500, 1000, 5000, 10000}};
  Buckets commit_seconds{{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0}};
};

// The Prometheus text for a snapshot (pure).
[[nodiscard]] std::string render_metrics(const Snapshot& s);
// "" when healthy, else the reason (pure): the database refused commits for longer than
// `busy_grace_ms` while merely busy, or at all when full or failing.
[[nodiscard]] std::string health(const Snapshot& s, std::int64_t now_steady_ms,
                                 std::int64_t busy_grace_ms = 30000);

// The published snapshot, shared between the loop (publish) and HTTP threads (read, or wait for
// the next publication: live views and ?wait= wake up after every commit).
class SharedSnapshot {
 public:
  void publish(Snapshot s) {
    {
      std::lock_guard lock(mutex_);
      s.version = snapshot_.version + 1;
      snapshot_ = std::move(s);
    }
    changed_.notify_all();
  }
  [[nodiscard]] Snapshot read() const {
    std::lock_guard lock(mutex_);
    return snapshot_;
  }
  [[nodiscard]] std::uint64_t version() const {
    std::lock_guard lock(mutex_);
    return snapshot_.version;
  }
  // Waits until a snapshot newer than `version` is published, at most `timeout`; returns the
  // current version.
  std::uint64_t wait_newer(std::uint64_t version, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return snapshot_.version != version; });
    return snapshot_.version;
  }
  // Wakes every waiter (the server is stopping).
  void wake_all() const { changed_.notify_all(); }

 private:
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  Snapshot snapshot_;
};

}  // namespace topicflow::sink
