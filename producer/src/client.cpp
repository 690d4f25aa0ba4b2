#include <topicflow/client.hpp>
#include <topicflow/clock.hpp>
#include <topicflow/sockets.hpp>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace topicflow {
namespace {

// The first hello is usually lost to PUB/SUB's slow joiner (our subscription is not at the sink
// yet): repeat it soon, then back off to kHandshakeHelloMs.
constexpr std::int64_t kHandshakeFirstRetryMs = 5;
constexpr std::int64_t kHandshakeHelloMs = 200;
constexpr std::int64_t kFollowHelloMs = 1000;
constexpr std::int64_t kFollowTickMs = 100;
constexpr std::int64_t kQuietWarnMs = 10000;

// Waits for input on the sink's events or the stop pipe; a signal (EINTR) just ends the wait.
void wait_readable(zmq::socket_t& socket, const StopSignal& stop, std::int64_t timeout_ms) {
  std::array<zmq::pollitem_t, 2> items{
      {{socket.handle(), 0, ZMQ_POLLIN, 0}, {nullptr, stop.fd(), ZMQ_POLLIN, 0}}};
  try {
    zmq::poll(items.data(), items.size(),
              std::chrono::milliseconds(std::max<std::int64_t>(timeout_ms, 0)));
  } catch (const zmq::error_t& e) {
    if (e.num() != EINTR) throw;
  }
}

std::string seconds_text(std::int64_t ms) {
  return fmt::format("{:g} s", static_cast<double>(ms) / 1000.0);
}

}  // namespace

// ---- SinkClient ----------------------------------------------------------------------------

SinkClient::SinkClient(zmq::context_t& ctx, const Endpoints& endpoints, std::string client_id,
                       std::string job, const Security& security)
    : push_(make_socket(ctx, zmq::socket_type::push, SocketOptions{})),
      sub_(make_socket(ctx, zmq::socket_type::sub, SocketOptions{})),
      endpoints_(endpoints),
      client_id_(std::move(client_id)),
      job_(std::move(job)),
      curve_(security.enabled()) {
  // Queue only on a live connection: hellos sent while the sink is down are dropped instead of
  // piling up, and a send that cannot go anywhere shows up as a timeout, not a silent queue.
  push_.set(zmq::sockopt::immediate, 1);
  sub_.set(zmq::sockopt::subscribe, wire::ack_topic(client_id_));
  if (!job_.empty()) sub_.set(zmq::sockopt::subscribe, wire::progress_topic(job_));
  // Before connecting: the first handshake is counted too.
  const auto monitor_endpoint = "inproc://topicflow-client-monitor-" + client_id_;
  if (zmq_socket_monitor(push_.handle(), monitor_endpoint.c_str(), ZMQ_EVENT_HANDSHAKE_SUCCEEDED) !=
      0) {
    throw zmq::error_t();
  }
  monitor_ = zmq::socket_t(ctx, zmq::socket_type::pair);
  monitor_.set(zmq::sockopt::linger, 0);
  monitor_.connect(monitor_endpoint);
  connect_socket(push_, "--sink", endpoints_.sink, security);
  connect_socket(sub_, "--events", endpoints_.events, security);
}

SinkClient::~SinkClient() { (void)zmq_socket_monitor(push_.handle(), nullptr, 0); }

std::uint64_t SinkClient::sink_connections() {
  // Each event is two frames: (event id, value), then the endpoint.
  for (zmq::message_t frame; monitor_.recv(frame, zmq::recv_flags::dontwait);) {
    if (!frame.more()) continue;  // (an endpoint frame)
    ++connections_;
  }
  return connections_;
}

bool SinkClient::try_send(const wire::Message& message) {
  zmq::message_t msg(wire::encode(message));
  return push_.send(msg, zmq::send_flags::dontwait).has_value();
}

bool SinkClient::send(const wire::Message& message, const StopSignal& stop) {
  return send(message, stop, std::chrono::milliseconds::max());
}

bool SinkClient::send(const wire::Message& message, const StopSignal& stop,
                      std::chrono::milliseconds timeout) {
  zmq::message_t msg(wire::encode(message));
  const auto start = steady_ms();
  for (;;) {
    if (push_.send(msg, zmq::send_flags::dontwait)) return true;
    if (stop.triggered()) return false;
    const auto waited = steady_ms() - start;
    if (timeout != std::chrono::milliseconds::max() && waited >= timeout.count()) {
      throw std::runtime_error("the sink at " + endpoints_.sink +
                               " takes no messages (no connection for " + seconds_text(waited) +
                               ")");
    }
    std::array<zmq::pollitem_t, 2> items{
        {{push_.handle(), 0, ZMQ_POLLOUT, 0}, {nullptr, stop.fd(), ZMQ_POLLIN, 0}}};
    try {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(50));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
    }
  }
}

std::optional<wire::Message> SinkClient::receive_one() {
  auto head = try_recv(sub_);
  if (!head) return std::nullopt;
  if (!head->more()) {
    bad_events_.warn("dropped a one-frame event on --events (expected topic + body)");
    return std::nullopt;
  }
  zmq::message_t body;
  // The frames of a multipart message arrive together: the body is already here.
  if (!sub_.recv(body, zmq::recv_flags::dontwait)) return std::nullopt;
  if (body.more()) {
    while (body.more()) {
      if (!sub_.recv(body, zmq::recv_flags::dontwait)) break;
    }
    bad_events_.warn("dropped an event with more than two frames on --events");
    return std::nullopt;
  }
  wire::Message message;
  try {
    message = wire::decode(body.to_string_view());
  } catch (const wire::DecodeError& e) {
    bad_events_.warn(fmt::format("dropped an undecodable event on topic '{}': {}",
                                 head->to_string_view(), e.what()));
    return std::nullopt;
  }
  // Subscriptions are prefixes: "ack/ab" also matches "ack/abc". Keep only what is ours.
  if (const auto* ack = std::get_if<wire::Ack>(&message)) {
    if (ack->client == client_id_) return message;
    return std::nullopt;
  }
  if (const auto* progress = std::get_if<wire::Progress>(&message)) {
    if (!job_.empty() && progress->job == job_) return message;
    return std::nullopt;
  }
  bad_events_.warn(
      fmt::format("dropped an unexpected {} message on --events", wire::type_name(message)));
  return std::nullopt;
}

std::optional<wire::Message> SinkClient::next_event(std::chrono::milliseconds timeout,
                                                    const StopSignal& stop) {
  const auto deadline = steady_ms() + timeout.count();
  for (;;) {
    if (stop.triggered()) return std::nullopt;
    // Drain before waiting: events that are not ours must not use up the time.
    bool got_something = false;
    for (int i = 0; i < 1000; ++i) {
      if (auto message = receive_one()) return message;
      if (sub_.get(zmq::sockopt::events) & ZMQ_POLLIN) {
        got_something = true;
        continue;
      }
      break;
    }
    const auto left = deadline - steady_ms();
    if (left <= 0) return std::nullopt;
    if (!got_something) wait_readable(sub_, stop, left);
  }
}

bool SinkClient::handshake(std::chrono::milliseconds timeout, const StopSignal& stop) {
  const auto start = steady_ms();
  const auto deadline = start + timeout.count();
  const wire::Message hello = wire::Hello{client_id_, job_};
  std::int64_t next_hello = start;
  std::int64_t interval = kHandshakeFirstRetryMs;
  for (;;) {
    if (stop.triggered()) return false;
    const auto now = steady_ms();
    if (now >= deadline) {
      throw std::runtime_error("cannot reach the sink at " + endpoints_.sink + " / " +
                               endpoints_.events + " within " + seconds_text(timeout.count()) +
                               (curve_
                                    ? " (CURVE is on: is --curve-sink-key the sink's public key, "
                                      "and this key in the sink's --curve-authorized?)"
                                    : ""));
    }
    if (now >= next_hello) {
      (void)try_send(hello);  // not connected yet: the next round tries again
      next_hello = now + interval;
      interval = std::min(interval * 2, kHandshakeHelloMs);
    }
    auto event = next_event(std::chrono::milliseconds(std::min(next_hello, deadline) - now), stop);
    if (!event) continue;
    if (const auto* ack = std::get_if<wire::Ack>(&*event);
        ack != nullptr && ack->kind == wire::AckKind::hello) {
      spdlog::debug("sink answered hello after {} ms", steady_ms() - start);
      return true;
    }
  }
}

// ---- follow_job ----------------------------------------------------------------------------

std::optional<wire::Progress> follow_job(SinkClient& client, ProgressView& view,
                                         const StopSignal& stop, const FollowOptions& options) {
  const wire::Message hello = wire::Hello{client.client_id(), client.job()};
  std::int64_t next_hello = 0;
  std::int64_t last_progress = steady_ms();
  std::int64_t last_warn = last_progress;
  for (;;) {
    if (stop.triggered()) return std::nullopt;
    if (options.tick && !options.tick()) return std::nullopt;
    auto now = steady_ms();
    if (now >= next_hello) {
      // The sink answers with the job's current progress: a lost event cannot stall us.
      (void)client.try_send(hello);
      next_hello = now + kFollowHelloMs;
    }
    const auto wait_ms = std::min(next_hello - now, options.tick ? kFollowTickMs : kFollowHelloMs);
    auto event = client.next_event(std::chrono::milliseconds(wait_ms), stop);
    now = steady_ms();
    if (!event) {
      if (now - last_progress >= kQuietWarnMs && now - last_warn >= kQuietWarnMs) {
        spdlog::warn("no progress from the sink at {} for {} s; still waiting",
                     client.endpoints().events, (now - last_progress) / 1000);
        last_warn = now;
      }
      continue;
    }
    const auto* progress = std::get_if<wire::Progress>(&*event);
    if (progress == nullptr) continue;
    last_progress = now;
    if (options.on_progress) options.on_progress(*progress);
    if (progress->pending == 0 && progress->running == 0 &&
        (!options.can_finish || options.can_finish(*progress))) {
      view.finish(*progress);
      return *progress;
    }
    // Nothing registered yet: no "0/0" bar.
    if (progress->pending + progress->running + progress->completed + progress->failed > 0)
      view.update(*progress);
  }
}

// ---- ProgressView --------------------------------------------------------------------------

ProgressView::ProgressView(Mode mode, std::int64_t line_interval_ms, const Clock& clock)
    : mode_(mode == Mode::automatic ? (::isatty(2) != 0 ? Mode::bar : Mode::lines) : mode),
      line_interval_ms_(line_interval_ms),
      clock_(clock) {}

ProgressView::Mode ProgressView::parse_mode(std::string_view text) {
  if (text == "auto") return Mode::automatic;
  if (text == "bar") return Mode::bar;
  if (text == "lines") return Mode::lines;
  if (text == "none") return Mode::none;
  throw std::invalid_argument("unknown progress mode '" + std::string(text) +
                              "' (auto, bar, lines, none)");
}

void ProgressView::measure(const wire::Progress& p) {
  const auto now = clock_.steady_ms();
  samples_.emplace_back(now, p.completed + p.failed);
  // Keep the window, and always two samples to measure with.
  while (samples_.size() > 2 && now - samples_.front().first > kRateWindowMs) samples_.pop_front();
  const auto& [first_ms, first_done] = samples_.front();
  const auto span = now - first_ms;
  if (span < kMinRateSpanMs) return;  // the previous rate stands (0 at the start)
  const auto done = samples_.back().second;
  const auto delta = done >= first_done ? done - first_done : 0;
  rate_ = static_cast<double>(delta) * 1000.0 / static_cast<double>(span);
}

void ProgressView::draw(const std::string& text, bool final) {
  std::string out;
  if (mode_ == Mode::bar) {
    out = "\r" + text;
    if (text.size() < drawn_width_) out.append(drawn_width_ - text.size(), ' ');
    drawn_width_ = text.size();
    if (final) out += '\n';
  } else {
    out = text + "\n";
  }
  std::fputs(out.c_str(), stderr);
  std::fflush(stderr);
  last_draw_ms_ = clock_.steady_ms();
  drawn_ = true;
}

void ProgressView::update(const wire::Progress& p) {
  measure(p);
  const auto now = clock_.steady_ms();
  switch (mode_) {
    case Mode::bar:
      if (!drawn_ || now - last_draw_ms_ >= 100) draw(render_bar(p, rate_), false);
      break;
    case Mode::lines:
      if (!drawn_ || now - last_draw_ms_ >= line_interval_ms_) draw(render_line(p, rate_), false);
      break;
    case Mode::automatic:
    case Mode::none: break;
  }
}

void ProgressView::finish(const wire::Progress& p) {
  measure(p);
  switch (mode_) {
    case Mode::bar: draw(render_bar(p, rate_), true); break;
    case Mode::lines: draw(render_line(p, rate_), true); break;
    case Mode::automatic:
    case Mode::none: break;
  }
}

std::string ProgressView::group_thousands(std::uint64_t value) {
  auto digits = std::to_string(value);
  std::string out;
  out.reserve(digits.size() + digits.size() / 3);
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string ProgressView::format_eta(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "-:--";
  const auto total = static_cast<std::int64_t>(std::llround(std::min(seconds, 1e9)));
  const auto h = total / 3600;
  const auto m = (total % 3600) / 60;
  const auto s = total % 60;
  if (h > 0) return fmt::format("{}:{:02}:{:02}", h, m, s);
  return fmt::format("{}:{:02}", m, s);
}

std::string ProgressView::render_bar(const wire::Progress& p, double rate, int width) {
  const auto total = p.pending + p.running + p.completed + p.failed;
  const auto done = p.completed + p.failed;
  const double fraction = total == 0 ? 1.0 : static_cast<double>(done) / static_cast<double>(total);
  const int filled = std::clamp(static_cast<int>(fraction * width), 0, width);
  std::string out = "[";
  out.append(static_cast<std::size_t>(filled), '#');
  out.append(static_cast<std::size_t>(width - filled), '.');
  const auto rate_units = static_cast<std::uint64_t>(std::llround(std::max(rate, 0.0)));
  const auto eta =
      rate > 0.0 ? format_eta(static_cast<double>(total - done) / rate) : std::string("-:--");
  out += fmt::format("] {}/{}  {:.1f}%  {}/s  ETA {}", done, total, fraction * 100.0,
                     group_thousands(rate_units), eta);
  if (p.failed > 0) out += fmt::format("  (failed {})", p.failed);
  return out;
}

std::string ProgressView::render_line(const wire::Progress& p, double rate) {
  const auto total = p.pending + p.running + p.completed + p.failed;
  return fmt::format("progress: {}/{} completed, {} failed, {} running, {}/s", p.completed, total,
                     p.failed, p.running, std::llround(std::max(rate, 0.0)));
}

}  // namespace topicflow
