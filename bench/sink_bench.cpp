// Sink throughput: a load generator plays producer, broker and workers over inproc ZeroMQ and
// the real Sink commits to a real SQLite file (WAL). Reported: status updates committed per
// second (registration + completion of each topic), for batch sizes 1 .. 10,000, with the
// default synchronous=FULL (an fsync per commit); `synchronous:0` is `--synchronous normal`.
//
//   build/release/bin/sink_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

#include <topicflow/clock.hpp>
#include <topicflow/log.hpp>
#include <topicflow/sink.hpp>
#include <topicflow/wire.hpp>

#include <benchmark/benchmark.h>

#include <filesystem>
#include <thread>

namespace {

namespace fs = std::filesystem;
using namespace topicflow;

void BM_SinkCommitRate(benchmark::State& state) {
  const auto batch_max = state.range(0);
  const auto topics = static_cast<int>(state.range(1));
  std::uint64_t updates = 0;
  double seconds = 0;
  int run = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const auto dir = fs::temp_directory_path() / ("topicflow-bench-" + std::to_string(::getpid()) +
                                                  "-" + std::to_string(run++));
    fs::remove_all(dir);
    fs::create_directories(dir);
    zmq::context_t ctx(1);
    zmq::socket_t frontend(ctx, zmq::socket_type::pull);
    frontend.set(zmq::sockopt::linger, 0);
    frontend.set(zmq::sockopt::rcvhwm, 0);
    frontend.bind("inproc://frontend");
    SinkConfig cfg;
    cfg.db = (dir / "bench.db").string();
    cfg.batch_max = batch_max;
    cfg.batch_delay_ms = 5;
    cfg.dispatch_window = 1000000;
    cfg.buffer_max = std::max<std::int64_t>(batch_max * 4, 20000);
    cfg.stats_interval_ms = 3600000;
    cfg.synchronous = state.range(2) != 0 ? "full" : "normal";
    cfg.endpoints = {"inproc://frontend", "tcp://127.0.0.1:5558", "inproc://sink",
                     "inproc://events"};
    spdlog::set_level(spdlog::level::warn);
    Sink sink(cfg, &ctx);
    StopSignal stop;
    std::thread sink_thread([&] { sink.run(stop); });
    zmq::socket_t push(ctx, zmq::socket_type::push);
    push.set(zmq::sockopt::linger, 0);
    push.set(zmq::sockopt::sndhwm, 0);
    push.connect("inproc://sink");
    state.ResumeTiming();

    // Ids shaped like the real ones, so the sink copies what it copies in production: the
    // producer's submission id is 16 hex digits (random_id), a worker's id is
    // hostname-pid (default_worker_id; 19 bytes for an EC2-style hostname). Both are longer
    // than std::string's 15-byte inline buffer.
    const std::string submission = "5f3a9c0d1e7b2a64";
    const std::string worker = "ip-10-0-12-34-48213";
    const auto started = steady_us();
    // producer: register every topic
    // messages never larger than a batch, so batch_max really bounds rows per transaction
    const int chunk = static_cast<int>(std::min<std::int64_t>(batch_max, 500));
    const auto per_report = static_cast<std::size_t>(std::min<std::int64_t>(batch_max, 256));
    for (int base = 0; base < topics; base += chunk) {
      wire::Submit s{"bench", submission, static_cast<std::uint32_t>(base / chunk), false, {}};
      for (int i = base; i < std::min(base + chunk, topics); ++i)
        s.items.push_back({"topic-" + std::to_string(i), "payload"});
      zmq::message_t msg(wire::encode(s));
      (void)push.send(msg, zmq::send_flags::none);
    }
    // workers: complete every task the sink dispatches
    // Like a real worker, it reports what it has whenever no further task is waiting, so the
    // sink's dispatch window (which counts tasks not yet reported) never stalls the loop.
    int done = 0;
    wire::Report report{worker, {}, static_cast<std::uint32_t>(per_report)};
    frontend.set(zmq::sockopt::rcvtimeo, 30000);
    while (done < topics) {
      zmq::message_t msg;
      if (!frontend.recv(msg, zmq::recv_flags::dontwait)) {
        if (!report.updates.empty()) {
          zmq::message_t out(wire::encode(report));
          (void)push.send(out, zmq::send_flags::none);
          report.updates.clear();
        }
        if (!frontend.recv(msg, zmq::recv_flags::none)) {
          state.SkipWithError("the sink dispatched nothing for 30 s");
          break;
        }
      }
      auto decoded = wire::decode(msg.to_string_view());
      std::vector<wire::Task> tasks;
      if (auto* batch = std::get_if<wire::TaskBatch>(&decoded)) {
        tasks = std::move(batch->tasks);
      } else {
        tasks.push_back(std::get<wire::Task>(decoded));
      }
      for (auto& task : tasks) {
        report.updates.push_back(
            {wire::UpdateKind::completed, task.job, task.key, task.attempt, false, "ok"});
        ++done;
        if (report.updates.size() == per_report || done == topics) {
          zmq::message_t out(wire::encode(report));
          (void)push.send(out, zmq::send_flags::none);
          report.updates.clear();
        }
      }
    }
    stop.trigger();  // the sink commits what it holds before returning
    sink_thread.join();
    const auto elapsed = static_cast<double>(steady_us() - started) / 1e6;
    state.PauseTiming();
    updates += sink.counters().updates;
    seconds += elapsed;
    push.close();
    frontend.close();
    fs::remove_all(dir);
    state.ResumeTiming();
  }
  state.counters["updates_per_s"] = benchmark::Counter(static_cast<double>(updates) / seconds);
  state.counters["topics"] = static_cast<double>(topics);
}

BENCHMARK(BM_SinkCommitRate)
    ->ArgsProduct({{1, 10, 100, 1000, 10000}, {20000}, {1}})
    ->Args({1000, 20000, 0})
    ->ArgNames({"batch_max", "topics", "synchronous"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
