// SQLite's floor for the sink: a topic's two row writes (the sink's INSERT and its completion
// UPDATE by rowid, the same statements on the real schema from store::open_for_writing), with
// nothing else: no ZeroMQ, no decoding, no batch, no state machine. 20,000 topics, registered
// in transactions of batch_max rows, then completed in transactions of batch_max rows. What
// the sink can never beat with two writes per topic; compare with sink_bench.
//
//   build/release/bin/sqlite_floor_bench --benchmark_repetitions=5
//   --benchmark_report_aggregates_only=true

#include <topicflow/sqlite.hpp>
#include <topicflow/store.hpp>

#include <benchmark/benchmark.h>

#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace topicflow;

void BM_TwoWritesPerTopic(benchmark::State& state) {
  const auto batch_max = static_cast<int>(state.range(0));
  const int topics = static_cast<int>(state.range(1));
  std::vector<std::string> keys;
  for (int i = 0; i < topics; ++i) keys.push_back("topic-" + std::to_string(i));
  const std::string submission = "3f9a1c0e5b7d2468";  // the producer's 16 hex digits
  const std::string worker = "ip-10-0-12-34-48213";   // hostname-pid
  double seconds = 0;
  int run = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const auto dir = fs::temp_directory_path() / ("topicflow-floor-" + std::to_string(::getpid()) +
                                                  "-" + std::to_string(run++));
    fs::remove_all(dir);
    fs::create_directories(dir);
    {
      auto db = store::open_for_writing((dir / "floor.db").string());
      db.busy_timeout(0);
      auto insert = db.prepare(
          "INSERT INTO topics(job, key, payload, status, attempts, error, updated_at, created_at, "
          "submission, "
          "due_at, dispatched_at, worker) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10, "
          "?11) "
          "ON CONFLICT(job, key) DO NOTHING");
      auto complete = db.prepare(
          "UPDATE topics SET status = 'completed', attempts = ?6, result = ?3, error = NULL, "
          "updated_at = ?4, "
          "due_at = NULL, dispatched_at = NULL, worker = ?5 WHERE rowid = ?7 AND job = ?1 AND key "
          "= ?2 AND "
          "status <> 'completed' AND status <> 'failed' AND attempts <= ?6");
      std::vector<std::int64_t> rowids(static_cast<std::size_t>(topics));
      state.ResumeTiming();
      const auto started = std::chrono::steady_clock::now();
      for (int base = 0; base < topics; base += batch_max) {
        sqlite::Transaction tx(db);
        for (int i = base; i < std::min(base + batch_max, topics); ++i) {
          insert.bind_static(1, "bench").bind_static(2, keys[static_cast<std::size_t>(i)]);
          insert.bind_blob_static(3, "payload").bind_static(4, "pending").bind(5, std::int64_t{0});
          insert.bind_null(6)
              .bind(7, std::int64_t{1000})
              .bind_static(8, submission)
              .bind(9, std::int64_t{1000});
          insert.bind_null(10).bind_static(11, "");
          insert.step();
          insert.reset();
          rowids[static_cast<std::size_t>(i)] = db.last_insert_rowid();
        }
        tx.commit();
      }
      for (int base = 0; base < topics; base += batch_max) {
        sqlite::Transaction tx(db);
        for (int i = base; i < std::min(base + batch_max, topics); ++i) {
          complete.bind_static(1, "bench").bind_static(2, keys[static_cast<std::size_t>(i)]);
          complete.bind_blob_static(3, "ok").bind(4, std::int64_t{2000}).bind_static(5, worker);
          complete.bind(6, std::int64_t{1}).bind(7, rowids[static_cast<std::size_t>(i)]);
          complete.step();
          complete.reset();
          if (db.changes() != 1) state.SkipWithError("a completion was refused");
        }
        tx.commit();
      }
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      state.PauseTiming();
    }
    fs::remove_all(dir);
    state.ResumeTiming();
  }
  const double runs = static_cast<double>(state.iterations());
  state.counters["topics_per_s"] = benchmark::Counter(topics * runs / seconds);
  state.counters["status_updates_per_s"] = benchmark::Counter(2.0 * topics * runs / seconds);
}

BENCHMARK(BM_TwoWritesPerTopic)
    ->ArgsProduct({{100, 1000, 10000}, {20000}})
    ->ArgNames({"batch_max", "topics"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
