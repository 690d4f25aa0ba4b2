#pragma once
// The broker: a streamer between the tasks' producers (the sink) and the workers.
//
// Owns a PULL socket bound on --frontend, a PUSH socket bound on --backend (both with --hwm), and
// a PUSH socket connected to --sink that announces this broker's instance id (wire::BrokerHello)
// at start and every second: a sink that sees a new id knows the queue of the previous broker was
// lost and redelivers what was in it. The broker never decodes tasks (workers validate them), so
// garbage passes through like anything else; memory stays bounded by the HWMs.
//
// The constructor binds (throws std::runtime_error "cannot bind --frontend ...: Address already
// in use", std::invalid_argument for a malformed endpoint). run() is single-threaded; counters()
// may be read from any thread.

#include <topicflow/curve.hpp>
#include <topicflow/endpoints.hpp>
#include <topicflow/shutdown.hpp>

#include <zmq.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace topicflow {

struct BrokerConfig {
  Endpoints endpoints;
  Security security;  // CURVE keys (curve.hpp); off by default
  int hwm = 1000;     // queue of the frontend (tasks waiting for a worker)
  // Per worker connection: tiny, so tasks wait in the broker (where any free worker can take
  // them) instead of in one busy worker's pipe. ZeroMQ HWMs do not cover the kernel's socket
  // buffers, hence the small send buffer too; it only applies to tcp:// (libzmq 4.3 sets no
  // buffer sizes on ipc:// connections), and even there each connection still holds ZeroMQ's
  // 8 KiB read batch: what really bounds the tasks a busy worker can hold is the sink's
  // dispatch window (docs/ARCHITECTURE.md, "Dispatch and flow control").
  int backend_hwm = 1;
  int backend_sndbuf = 16384;
  std::int64_t hello_interval_ms = 1000;   // wire::BrokerHello period
  std::int64_t stats_interval_ms = 10000;  // rate line period
  std::size_t burst = 1024;                // messages moved per wake-up before polling again
  int metrics_port = 0;                    // the program's metrics endpoint (0: off)
  std::string metrics_address = "127.0.0.1";
};

struct BrokerCounters {
  std::uint64_t forwarded = 0;       // messages sent to the backend
  std::uint64_t hellos = 0;          // BrokerHello messages queued to the sink
  std::uint64_t hellos_dropped = 0;  // not queued: the sink was not keeping up (or not there)
  std::uint64_t held = 0;            // messages in hand, waiting for a worker to take them (0 or 1)
  std::uint64_t waits = 0;           // times a message had to wait for a worker (backend full)
};

class Broker {
 public:
  // `context` may be shared (tests use inproc://); otherwise the broker owns one.
  explicit Broker(BrokerConfig config, zmq::context_t* context = nullptr);
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // Streams until `stop` triggers (watched in the poll set, so it returns within one poll).
  void run(const StopSignal& stop);

  [[nodiscard]] BrokerCounters counters() const noexcept;
  // Prometheus text of the counters (names in docs/metrics.md); thread-safe like counters().
  [[nodiscard]] std::string metrics_text() const;
  [[nodiscard]] const std::string& instance() const noexcept { return instance_; }
  // Bound addresses (resolves tcp://127.0.0.1:* to the real port).
  [[nodiscard]] std::string frontend_endpoint() const;
  [[nodiscard]] std::string backend_endpoint() const;

 private:
  void send_hello();
  // Moves up to config_.burst messages; returns false when the backend would block (the message
  // in hand is kept in held_).
  bool pump();
  bool flush_held();

  BrokerConfig config_;
  std::unique_ptr<zmq::context_t> own_context_;
  zmq::context_t* context_;
  std::optional<CurveServer> curve_;  // with CURVE on: admits clients; before the sockets' binds
  zmq::socket_t frontend_;
  zmq::socket_t backend_;
  zmq::socket_t hello_;
  std::string instance_;
  std::vector<zmq::message_t> held_;  // frames of one message the backend did not take yet
  std::atomic<std::uint64_t> forwarded_{0};
  std::atomic<std::uint64_t> hellos_{0};
  std::atomic<std::uint64_t> hellos_dropped_{0};
  std::atomic<std::uint64_t> held_count_{0};  // held_ is the main thread's; this is its mirror
  std::atomic<std::uint64_t> waits_{0};
};

}  // namespace topicflow
