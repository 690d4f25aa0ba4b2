#pragma once
// A client of the sink: what `topicflow-producer` and `topicflow run` use to talk to it.
// Owns a PUSH socket to --sink and a SUB socket on --events. Not thread-safe.

#include <topicflow/config.hpp>
#include <topicflow/shutdown.hpp>
#include <topicflow/wire.hpp>

#include <zmq.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace topicflow {

class SinkClient {
 public:
  // client_id: random id of this run (also the submission id); job: the job to follow.
  SinkClient(zmq::context_t& ctx, const Endpoints& endpoints, std::string client_id, std::string job);

  // Sends hello every 200 ms until the sink's ack(kind=hello) arrives. Throws
  // std::runtime_error("cannot reach the sink at <sink> / <events> within N s") on timeout;
  // returns false if `stop` triggered first.
  bool handshake(std::chrono::milliseconds timeout, const StopSignal& stop);

  // Sends one message to the sink, blocking while its HWM is full; false if `stop` triggered.
  bool send(const wire::Message& message, const StopSignal& stop);

  // Next ack for this client or progress for this job, waiting at most `timeout`.
  std::optional<wire::Message> next_event(std::chrono::milliseconds timeout, const StopSignal& stop);

  [[nodiscard]] const std::string& client_id() const noexcept { return client_id_; }
  [[nodiscard]] const std::string& job() const noexcept { return job_; }

 private:
  zmq::socket_t push_;
  zmq::socket_t sub_;
  Endpoints endpoints_;
  std::string client_id_;
  std::string job_;
};

// Renders job progress on stderr: a bar redrawn in place on a terminal, or a plain line every
// `line_interval_ms` otherwise. Shared by `topicflow-producer --wait` and `topicflow run`.
class ProgressView {
 public:
  enum class Mode { automatic, bar, lines, none };
  explicit ProgressView(Mode mode = Mode::automatic, std::int64_t line_interval_ms = 2000);
  void update(const wire::Progress& progress);
  void finish(const wire::Progress& progress);  // final redraw and newline

 private:
  Mode mode_;
  std::int64_t line_interval_ms_;
  std::int64_t started_ms_;
  std::int64_t last_draw_ms_ = 0;
  std::uint64_t last_done_ = 0;
  std::int64_t last_rate_ms_ = 0;
  double rate_ = 0.0;
};

// Follows `client.job()` until no topic is pending or running (re-sending hello every second so
// a dropped event cannot stall it). Returns the final progress, or nothing if `stop` triggered.
std::optional<wire::Progress> follow_job(SinkClient& client, ProgressView& view, const StopSignal& stop);

}  // namespace topicflow
