// topicflow-bench-probe: load generators for the benchmarks that need to play a role over ZeroMQ.
//
//   latency  plays broker and worker for a running topicflow-sink: binds --frontend (so it
//            receives the tasks the sink dispatches), registers --count topics, then for one
//            task at a time sends `started`, waits until it is committed, pauses, sends
//            `completed` and measures from the send to the moment a reader of the database sees
//            the row `completed` (polling every --poll-us). Light load: one update in flight, so
//            every update opens its own batch and waits the sink's whole --batch-delay-ms.
//            Prints one JSON line of percentiles; --csv writes every sample.
//   flood    pushes --count task messages of --payload-bytes into a broker's --frontend as fast
//            as ZeroMQ accepts them (each send waits at most --send-timeout-ms), to measure the
//            broker's memory under backpressure. Prints one JSON line.
//
// Both use the product's wire codec, so they speak exactly what the real roles speak.

#include <topicflow/clock.hpp>
#include <topicflow/sockets.hpp>
#include <topicflow/sqlite.hpp>
#include <topicflow/wire.hpp>

#include <CLI/CLI.hpp>
#include <zmq.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace {

using namespace topicflow;

struct LatencyConfig {
  std::string sink = "tcp://127.0.0.1:5559";
  std::string frontend = "tcp://127.0.0.1:5557";
  std::string db;
  std::string job = "latency";
  int count = 200;
  int pause_min_ms = 2;
  int pause_max_ms = 10;
  int poll_us = 100;
  int timeout_ms = 10000;
  std::string csv;
};

struct FloodConfig {
  std::string frontend = "tcp://127.0.0.1:5557";
  int count = 10000;
  int payload_bytes = 4096;
  int send_timeout_ms = 2000;
  int sndhwm = 1000;
};

std::int64_t percentile(std::vector<std::int64_t> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  // Nearest rank: the smallest value with at least p of the samples at or below it.
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::min(v.size(), std::max<std::size_t>(rank, 1)) - 1];
}

class Poller {
 public:
  Poller(const std::string& path, int timeout_ms)
      : db_(open(path, timeout_ms)),
        status_(db_.prepare("SELECT status FROM topics WHERE job = ? AND key = ?")) {}

  // Polls until the row has `status`; returns the steady time (µs) it was first seen, or nullopt.
  std::optional<std::int64_t> wait_for(const std::string& job, const std::string& key,
                                       std::string_view status, int poll_us, int timeout_ms) {
    const auto deadline = steady_ms() + timeout_ms;
    for (;;) {
      status_.bind(1, job).bind(2, key);
      bool match = false;
      try {
        match = status_.step() && status_.column_text(0) == status;
      } catch (const sqlite::BusyError&) {
        // a reader is only ever busy for an instant (WAL recovery); poll again
      }
      status_.reset();
      const auto now = steady_us();
      if (match) return now;
      if (now / 1000 >= deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::microseconds(poll_us));
    }
  }

 private:
  static sqlite::Database open(const std::string& path, int timeout_ms) {
    // The sink creates the file and its schema; wait for both (bounded).
    const auto deadline = steady_ms() + timeout_ms;
    for (;;) {
      try {
        sqlite::Database db(path, sqlite::OpenMode::read_only);
        auto probe = db.prepare("SELECT count(*) FROM topics");
        (void)probe.step();
        return db;
      } catch (const sqlite::SqliteError&) {
        if (steady_ms() >= deadline) throw;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  }
  sqlite::Database db_;
  sqlite::Statement status_;
};

void send(zmq::socket_t& push, const wire::Message& m) {
  zmq::message_t msg(wire::encode(m));
  if (!push.send(msg, zmq::send_flags::none)) throw std::runtime_error("send failed");
}

int run_latency(const LatencyConfig& cfg) {
  zmq::context_t ctx(1);
  SocketOptions opts;
  auto tasks_in = make_socket(ctx, zmq::socket_type::pull, opts);
  bind_socket(tasks_in, "--frontend", cfg.frontend);
  tasks_in.set(zmq::sockopt::rcvtimeo, cfg.timeout_ms);
  auto push = make_socket(ctx, zmq::socket_type::push, opts);
  push.set(zmq::sockopt::linger, 1000);
  connect_socket(push, "--sink", cfg.sink);

  Poller poller(cfg.db, cfg.timeout_ms);
  const std::string worker = "latency-probe-" + std::to_string(::getpid());
  // An empty report announces one slot, so the sink's dispatch window is small, as for a real
  // worker with --concurrency 1.
  send(push, wire::Report{worker, {}, 1});
  wire::Submit submit{cfg.job, worker, 0, false, {}};
  for (int i = 0; i < cfg.count; ++i) submit.items.push_back({"latency-" + std::to_string(i), "x"});
  send(push, submit);

  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> pause(cfg.pause_min_ms, cfg.pause_max_ms);
  std::deque<wire::Task> queue;
  std::vector<std::int64_t> started_us, completed_us;
  for (int i = 0; i < cfg.count; ++i) {
    while (queue.empty()) {
      zmq::message_t msg;
      if (!tasks_in.recv(msg)) {
        std::cerr << "latency: no task from the sink within " << cfg.timeout_ms << " ms after " << i
                  << " results\n";
        return 1;
      }
      auto decoded = wire::decode(msg.to_string_view());
      if (auto* t = std::get_if<wire::Task>(&decoded)) queue.push_back(std::move(*t));
      if (auto* b = std::get_if<wire::TaskBatch>(&decoded))
        for (auto& t : b->tasks) queue.push_back(std::move(t));
    }
    auto task = std::move(queue.front());
    queue.pop_front();
    for (auto [kind, status, samples] :
         {std::tuple{wire::UpdateKind::started, "running", &started_us},
          std::tuple{wire::UpdateKind::completed, "completed", &completed_us}}) {
      // A pause before each update, so it never shares a batch window with the previous one.
      std::this_thread::sleep_for(std::chrono::milliseconds(pause(rng)));
      wire::Report r{worker,
                     {{kind, task.job, task.key, task.attempt, false,
                       kind == wire::UpdateKind::completed ? "ok" : ""}},
                     1};
      zmq::message_t msg(wire::encode(r));
      const auto sent = steady_us();
      if (!push.send(msg, zmq::send_flags::none)) throw std::runtime_error("send failed");
      const auto seen = poller.wait_for(task.job, task.key, status, cfg.poll_us, cfg.timeout_ms);
      if (!seen) {
        std::cerr << "latency: " << task.key << " not " << status << " within " << cfg.timeout_ms
                  << " ms\n";
        return 1;
      }
      samples->push_back(*seen - sent);
    }
  }
  if (!cfg.csv.empty()) {
    std::ofstream csv(cfg.csv);
    csv << "kind,latency_us\n";
    for (auto v : started_us) csv << "started," << v << "\n";
    for (auto v : completed_us) csv << "completed," << v << "\n";
  }
  auto ms = [](std::int64_t us) { return static_cast<double>(us) / 1000.0; };
  std::printf(
      "{\"samples\":%zu,\"completed_p50_ms\":%.2f,\"completed_p90_ms\":%.2f,\"completed_p99_ms\":%."
      "2f,"
      "\"completed_max_ms\":%.2f,\"started_p50_ms\":%.2f,\"started_p99_ms\":%.2f,\"started_max_"
      "ms\":%.2f}\n",
      completed_us.size(), ms(percentile(completed_us, 0.5)), ms(percentile(completed_us, 0.9)),
      ms(percentile(completed_us, 0.99)), ms(percentile(completed_us, 1.0)),
      ms(percentile(started_us, 0.5)), ms(percentile(started_us, 0.99)),
      ms(percentile(started_us, 1.0)));
  return 0;
}

int run_flood(const FloodConfig& cfg) {
  zmq::context_t ctx(1);
  SocketOptions opts;
  opts.sndhwm = cfg.sndhwm;
  auto push = make_socket(ctx, zmq::socket_type::push, opts);
  push.set(zmq::sockopt::sndtimeo, cfg.send_timeout_ms);
  connect_socket(push, "--frontend", cfg.frontend);
  const std::string payload(static_cast<std::size_t>(cfg.payload_bytes), 'p');
  const auto t0 = steady_ms();
  int sent = 0;
  for (; sent < cfg.count; ++sent) {
    zmq::message_t msg(
        wire::encode(wire::Task{"flood", "flood-" + std::to_string(sent), payload, 1}));
    if (!push.send(msg, zmq::send_flags::none)) break;  // the HWMs are full: backpressure
  }
  std::printf("{\"offered\":%d,\"sent\":%d,\"payload_bytes\":%d,\"ms\":%lld}\n", cfg.count, sent,
              cfg.payload_bytes, static_cast<long long>(steady_ms() - t0));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Load generators for topicflow's benchmarks (bench/latency, bench/memory)",
               "topicflow-bench-probe"};
  app.require_subcommand(1);
  LatencyConfig lat;
  auto* latency =
      app.add_subcommand("latency", "time result sent -> committed against a running sink");
  latency->add_option("--sink", lat.sink, "the sink's PULL endpoint");
  latency->add_option("--frontend", lat.frontend,
                      "endpoint to bind in the broker's place (the sink pushes tasks here)");
  latency->add_option("--db", lat.db, "the sink's database (read only)")->required();
  latency->add_option("--job", lat.job, "job name");
  latency->add_option("--count", lat.count, "results to time")->check(CLI::Range(1, 1000000));
  latency->add_option("--pause-min-ms", lat.pause_min_ms, "least pause before each update")
      ->check(CLI::Range(0, 60000));
  latency->add_option("--pause-max-ms", lat.pause_max_ms, "longest pause before each update")
      ->check(CLI::Range(0, 60000));
  latency->add_option("--poll-us", lat.poll_us, "database polling period")
      ->check(CLI::Range(10, 1000000));
  latency->add_option("--timeout-ms", lat.timeout_ms, "bound on every wait")
      ->check(CLI::Range(100, 600000));
  latency->add_option("--csv", lat.csv, "write every sample here");
  FloodConfig fl;
  auto* flood = app.add_subcommand(
      "flood", "push task messages into a broker's frontend until it pushes back");
  flood->add_option("--frontend", fl.frontend, "the broker's frontend");
  flood->add_option("--count", fl.count, "messages to offer")->check(CLI::Range(1, 100000000));
  flood->add_option("--payload-bytes", fl.payload_bytes, "payload of each task")
      ->check(CLI::Range(0, 1 << 20));
  flood->add_option("--send-timeout-ms", fl.send_timeout_ms, "give up when a send waits this long")
      ->check(CLI::Range(1, 600000));
  flood->add_option("--sndhwm", fl.sndhwm, "this process's send HWM")
      ->check(CLI::Range(1, 10000000));
  CLI11_PARSE(app, argc, argv);
  if (lat.pause_max_ms < lat.pause_min_ms) {
    std::cerr << "topicflow-bench-probe: --pause-max-ms must not be below --pause-min-ms\n";
    return 2;
  }
  try {
    if (latency->parsed()) return run_latency(lat);
    return run_flood(fl);
  } catch (const std::exception& e) {
    std::cerr << "topicflow-bench-probe: " << e.what() << "\n";
    return 1;
  }
}
