#pragma once
// A client of the sink: what `topicflow-producer` and `topicflow run` use to talk to it.
// Owns a PUSH socket to --sink and a SUB socket on --events. Not thread-safe.

#include <topicflow/clock.hpp>
#include <topicflow/curve.hpp>
#include <topicflow/endpoints.hpp>
#include <topicflow/log.hpp>
#include <topicflow/shutdown.hpp>
#include <topicflow/wire.hpp>

#include <zmq.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace topicflow {

class SinkClient {
 public:
  // client_id: random id of this run (also the submission id); job: the job to follow.
  // With CURVE on in `security`, both sockets are CURVE clients of the sink.
  SinkClient(zmq::context_t& ctx, const Endpoints& endpoints, std::string client_id,
             std::string job, const Security& security = {});
  ~SinkClient();
  SinkClient(const SinkClient&) = delete;
  SinkClient& operator=(const SinkClient&) = delete;
  SinkClient(SinkClient&&) = delete;
  SinkClient& operator=(SinkClient&&) = delete;

  // Sends hello every 200 ms until the sink's ack(kind=hello) arrives. Throws
  // std::runtime_error("cannot reach the sink at <sink> / <events> within N s") on timeout;
  // returns false if `stop` triggered first.
  bool handshake(std::chrono::milliseconds timeout, const StopSignal& stop);

  // Sends one message to the sink, blocking while its HWM is full; false if `stop` triggered.
  bool send(const wire::Message& message, const StopSignal& stop);
  // Same, but gives up after `timeout`: throws std::runtime_error("the sink at <sink> takes no
  // messages ...") then. The PUSH socket queues only on a live connection (ZMQ_IMMEDIATE), so this
  // is what a vanished sink looks like.
  bool send(const wire::Message& message, const StopSignal& stop,
            std::chrono::milliseconds timeout);
  // Sends without waiting; false if the message could not be queued (no connection, HWM full).
  bool try_send(const wire::Message& message);

  // Next ack for this client or progress for this job, waiting at most `timeout`.
  std::optional<wire::Message> next_event(std::chrono::milliseconds timeout,
                                          const StopSignal& stop);

  // Connections to the sink's --sink socket so far (ZMTP handshakes done). One more than the
  // first means the sink was restarted, or the network dropped the connection: what it had not
  // acknowledged may be lost. Reads the socket's monitor; does not wait.
  [[nodiscard]] std::uint64_t sink_connections();

  [[nodiscard]] const std::string& client_id() const noexcept { return client_id_; }
  [[nodiscard]] const std::string& job() const noexcept { return job_; }
  [[nodiscard]] const Endpoints& endpoints() const noexcept { return endpoints_; }
  // Events dropped because they did not decode (counted, logged rate-limited).
  [[nodiscard]] std::uint64_t bad_events() const noexcept { return bad_events_.total(); }

 private:
  // One event off the SUB socket if it is for us; nothing for an event to drop.
  std::optional<wire::Message> receive_one();

  zmq::socket_t push_;
  zmq::socket_t sub_;
  zmq::socket_t monitor_;  // push_'s handshake events
  std::uint64_t connections_ = 0;
  Endpoints endpoints_;
  std::string client_id_;
  std::string job_;
  RateLimitedLog bad_events_{5000};
  bool curve_ = false;  // for the hint in the handshake's timeout error
};

// Renders job progress on stderr: a bar redrawn in place on a terminal, or a plain line every
// `line_interval_ms` otherwise. Shared by `topicflow-producer --wait` and `topicflow run`.
class ProgressView {
 public:
  enum class Mode { automatic, bar, lines, none };
  // The rate is the slope of the updates of the last kRateWindowMs, shown from the second
  // update on (once they are kMinRateSpanMs apart), so a short job shows a rate and an ETA too.
  static constexpr std::int64_t kRateWindowMs = 3000;
  static constexpr std::int64_t kMinRateSpanMs = 50;

  // `clock` times the updates (tests move a ManualClock).
  explicit ProgressView(Mode mode = Mode::automatic, std::int64_t line_interval_ms = 2000,
                        const Clock& clock = steady_clock());
  void update(const wire::Progress& progress);
  void finish(const wire::Progress& progress);  // final redraw and newline

  // "auto", "bar", "lines", "none"; throws std::invalid_argument otherwise.
  [[nodiscard]] static Mode parse_mode(std::string_view text);
  // The mode in effect (automatic resolved against isatty(2)).
  [[nodiscard]] Mode mode() const noexcept { return mode_; }
  // Topics finished per second over the last few seconds; 0 until two updates were seen.
  [[nodiscard]] double rate() const noexcept { return rate_; }

  // `[#########.........] 1234/2880  42.8%  1,234/s  ETA 0:03  (failed 3)`
  [[nodiscard]] static std::string render_bar(const wire::Progress& progress, double rate,
                                              int width = 20);
  // `progress: 1234/2880 completed, 3 failed, 20 running, 1234/s`
  [[nodiscard]] static std::string render_line(const wire::Progress& progress, double rate);
  // 1234567 -> "1,234,567"
  [[nodiscard]] static std::string group_thousands(std::uint64_t value);
  // seconds -> "0:03", "12:05", "1:02:03"
  [[nodiscard]] static std::string format_eta(double seconds);

 private:
  void measure(const wire::Progress& progress);
  void draw(const std::string& text, bool final);

  Mode mode_;
  std::int64_t line_interval_ms_;
  const Clock& clock_;
  std::int64_t last_draw_ms_ = 0;
  bool drawn_ = false;
  std::deque<std::pair<std::int64_t, std::uint64_t>> samples_;  // (time, topics done)
  double rate_ = 0.0;
  std::size_t drawn_width_ = 0;  // length of the bar on screen, to blank a shorter redraw
};

// What follow_job() does besides waiting; all optional.
struct FollowOptions {
  // Called before every wait, at least every 100 ms; returning false ends the following
  // (follow_job returns nothing): `topicflow run` supervises its children here.
  std::function<bool()> tick;
  // Whether a progress event with nothing pending or running may end the wait. `topicflow run`
  // refuses those computed before its submission was complete (a job whose first chunks were
  // done before the last one was registered); default: any may.
  std::function<bool(const wire::Progress&)> can_finish;
  // Sees every progress event of the job (the last one ends in the summary).
  std::function<void(const wire::Progress&)> on_progress;
};

// Follows `client.job()` until no topic is pending or running (re-sending hello every second so
// a dropped event cannot stall it), showing it on `view`. Returns the final progress, or nothing
// if `stop` triggered or `options.tick` said so. Shared by `topicflow-producer --wait` and
// `topicflow run`.
std::optional<wire::Progress> follow_job(SinkClient& client, ProgressView& view,
                                         const StopSignal& stop, const FollowOptions& options = {});

}  // namespace topicflow
