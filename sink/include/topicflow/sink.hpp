#pragma once
// The sink: the only writer of the database, and the scheduler of record.
//
// Owns the SQLite connection, a PULL socket (status traffic from workers, submits from
// producers, broker hellos), a PUB socket (acks and progress) and a PUSH socket to the broker
// frontend (tasks). Applies messages to an in-memory batch, coalescing the updates of one topic,
// and commits the batch in ONE BEGIN IMMEDIATE transaction at --batch-max rows or
// --batch-delay-ms after its first row; on SQLITE_BUSY it keeps the batch and retries with
// capped, jittered exponential backoff. Single-threaded; run() returns after the stop signal
// once the pending batch is committed.

#include <topicflow/clock.hpp>
#include <topicflow/curve.hpp>
#include <topicflow/endpoints.hpp>
#include <topicflow/shutdown.hpp>
#include <zmq.hpp>

#include <cstdint>
#include <string>

namespace topicflow {

struct SinkConfig {
  Endpoints endpoints;
  Security security;  // CURVE keys (curve.hpp); off by default
  std::string db = "topicflow.db";
  std::int64_t batch_max = 1000;
  std::int64_t batch_delay_ms = 20;
  std::int64_t lease_ms = 30000;
  std::int64_t max_attempts = 5;
  std::int64_t retry_base_ms = 500;
  std::int64_t retry_max_ms = 60000;
  std::int64_t dispatch_timeout_ms = 60000;
  std::int64_t dispatch_window = 2000;
  std::int64_t buffer_max = 20000;  // updates held while the DB is busy before reads pause
  std::int64_t busy_base_ms = 10;
  std::int64_t busy_max_ms = 2000;
  std::int64_t stats_interval_ms = 10000;
  // "full": an fsync per committed batch, so whatever the sink acknowledged survives a power
  // cut (SPEC §4.7); "normal": fsyncs only at checkpoints (a crash of the OS may lose the last
  // commits; a crash of the sink alone never does).
  std::string synchronous = "full";
  // The HTTP server: API (/v1), dashboard (/), /metrics and /healthz on one port (0: off).
  int http_port = 0;
  std::string http_address = "127.0.0.1";
  std::string http_token_file;  // writes need its token when set
  bool http_read_only = false;
  std::int64_t http_max_body_bytes = 32LL << 20;
  // The older names of http_port / http_address (the metrics moved onto the HTTP server).
  int metrics_port = 0;
  std::string metrics_address = "127.0.0.1";
};

// The port the HTTP server serves on: --http-port, else its alias --metrics-port; 0 when off.
[[nodiscard]] int http_port(const SinkConfig& cfg);
// Checks the HTTP options; throws std::invalid_argument with a one-line reason (a main exits 2):
// a non-loopback --http-address needs --http-token-file or --http-read-only, the token file
// must be readable and hold a token, --metrics-port may not name another port than --http-port.
void validate_http(const SinkConfig& cfg);
// The token in `path`: its first line, surrounding whitespace removed ("" for no path); throws
// std::invalid_argument when the file cannot be read or holds no token.
[[nodiscard]] std::string read_token(const std::string& path);

}  // namespace topicflow

#include <topicflow/wire.hpp>

#include <memory>

namespace topicflow {

// Counters since start; read after run() returned, or via metrics.
struct SinkCounters {
  std::uint64_t messages = 0;
  std::uint64_t updates = 0;  // status changes committed
  std::uint64_t batches = 0;
  std::uint64_t busy_retries = 0;
  std::uint64_t unavailable_retries = 0;  // disk full or I/O error
  std::uint64_t decode_errors = 0;
  std::uint64_t dispatched = 0;  // tasks sent to the broker
  std::uint64_t redelivered = 0;
  std::uint64_t transit_resent = 0;  // not started within the transit timeout: sent again
  std::uint64_t retried = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t stale = 0;
  std::uint64_t bogus = 0;
  std::uint64_t guard_refused = 0;  // writes the SQL guard refused (should stay 0)
  std::uint64_t lease_expired = 0;
  std::uint64_t cancelled_late = 0;  // results for cancelled topics, ignored
};

class Sink {
 public:
  // Opens the database and binds the sockets; throws std::runtime_error (bad path, endpoint in
  // use) with a one-line reason. Timers and due times read `clock` (the real clocks when null):
  // a test moves a ManualClock instead of sleeping.
  Sink(SinkConfig config, zmq::context_t* context = nullptr, const Clock* clock = nullptr);
  ~Sink();
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;

  // Serves until `stop` triggers, then commits what it holds and returns.
  void run(const StopSignal& stop);

  [[nodiscard]] SinkCounters counters() const;
  // Thread-safe while run() runs: the counters as of the sink's last published snapshot (after
  // every commit, every failed commit, and at least twice a second).
  [[nodiscard]] SinkCounters published_counters() const;
  // Bound addresses (useful with tcp://127.0.0.1:* in tests).
  [[nodiscard]] std::string sink_endpoint() const;
  [[nodiscard]] std::string events_endpoint() const;
  // Port of the HTTP server (0 when off).
  [[nodiscard]] int http_port() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace topicflow
