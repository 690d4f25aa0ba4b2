#pragma once
// The worker role: pulls tasks from the broker, runs a Handler on each (up to `concurrency` at
// once), and reports started / heartbeat / completed / failed / released updates to the sink.
//
// Owns its ZeroMQ context and sockets (created in run(), closed before run() returns), a pool
// of `concurrency` handler threads, and the Handler. The main thread (the one in run()) owns
// both sockets; handler threads hand outcomes back through a queue and an eventfd.
// Thread-safety: run() once, from one thread; counters() and id() from any thread.

#include <topicflow/clock.hpp>
#include <topicflow/curve.hpp>
#include <topicflow/endpoints.hpp>
#include <topicflow/handler.hpp>
#include <topicflow/shutdown.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace topicflow {

struct WorkerConfig {
  Endpoints endpoints;
  Security security;                        // CURVE keys (curve.hpp); off by default
  int concurrency = 1;                      // handlers running at once (>= 1)
  std::string handler = "noop";             // --handler spec, see make_handler(); used by main
  std::int64_t lease_ms = 30000;            // heartbeats every lease_ms / 3 for tasks in flight
  std::int64_t task_timeout_ms = 0;         // per-task deadline on the CancelToken (0: none)
  std::int64_t shutdown_grace_ms = 5000;    // on stop, wait this long for handlers, then release
  std::int64_t max_result_bytes = 1 << 20;  // larger in-process results fail the task
  std::int64_t flush_ms = 2;  // a report is sent at most this long after its first update
  std::string id;             // reported worker id; default "<hostname>-<pid>"
  int metrics_port = 0;       // run_worker's metrics endpoint (0: off)
  std::string metrics_address = "127.0.0.1";
};

// Counters since construction, for logs and tests. A snapshot; values are monotonic except
// in_flight.
struct WorkerCounters {
  std::uint64_t received = 0;      // tasks taken from the broker
  std::uint64_t completed = 0;     // completed outcomes reported
  std::uint64_t failed = 0;        // failed outcomes reported
  std::uint64_t released = 0;      // tasks given back unfinished at shutdown
  std::uint64_t bad_messages = 0;  // frames dropped: undecodable, or not a task
  std::uint64_t reports = 0;       // Report messages sent to the sink
  std::uint64_t updates = 0;       // updates inside them
  std::uint64_t coalesced =
      0;  // `started` updates dropped because the result went in the same report
  std::uint64_t in_flight = 0;      // tasks running now
  std::uint64_t max_in_flight = 0;  // the most ever running at once
  bool stopping = false;            // run() saw its stop: finishing or giving back its tasks
};

// "<hostname>-<pid>"
[[nodiscard]] std::string default_worker_id();

// Throws std::invalid_argument with a one-line reason for a configuration the Worker would
// refuse (see its constructor); `topicflow run` checks what it passes on before it starts.
void check_worker_config(const WorkerConfig& config);

class Worker {
 public:
  // Throws std::invalid_argument on a bad config (concurrency < 1, lease_ms <= 0, a bad
  // endpoint, negative times, max_result_bytes outside 0..1 MiB, null handler, id too long).
  // The worker's timers (report flush delay, heartbeats every lease/3, task timeouts, shutdown
  // grace) read `clock`; tests pass a ManualClock and move time by hand. It must outlive run().
  Worker(WorkerConfig config, std::unique_ptr<Handler> handler,
         const Clock& clock = steady_clock());
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Serves until `stop` is triggered, then: stops pulling at once, waits up to
  // shutdown_grace_ms for running handlers, reports the rest as `released` and cancels them,
  // flushes its reports and returns (within grace + about 1 s). Throws on a bad endpoint
  // (cannot connect) and on ZeroMQ errors other than a dropped message.
  void run(const StopSignal& stop);

  [[nodiscard]] WorkerCounters counters() const noexcept;
  [[nodiscard]] const std::string& id() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace topicflow
