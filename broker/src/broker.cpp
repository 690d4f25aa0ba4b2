#include <topicflow/broker.hpp>

#include <topicflow/clock.hpp>
#include <topicflow/log.hpp>
#include <topicflow/metrics.hpp>
#include <topicflow/random_id.hpp>
#include <topicflow/sockets.hpp>
#include <topicflow/wire.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>

namespace topicflow {

Broker::Broker(BrokerConfig config, zmq::context_t* context)
    : config_(std::move(config)), context_(context) {
  validate_endpoints(config_.endpoints);
  if (config_.hwm < 0) throw std::invalid_argument("--hwm must not be negative");
  if (context_ == nullptr) {
    own_context_ = std::make_unique<zmq::context_t>(1);
    context_ = own_context_.get();
  }
  if (config_.security.enabled()) curve_.emplace(*context_, config_.security);
  const CurveServer* curve = curve_ ? &*curve_ : nullptr;
  SocketOptions stream;
  stream.sndhwm = config_.hwm;
  stream.rcvhwm = config_.hwm;
  frontend_ = make_socket(*context_, zmq::socket_type::pull, stream);
  SocketOptions backend = stream;
  backend.sndhwm = std::max(config_.backend_hwm, 1);
  backend_ = make_socket(*context_, zmq::socket_type::push, backend);
  if (config_.backend_sndbuf > 0) backend_.set(zmq::sockopt::sndbuf, config_.backend_sndbuf);
  bind_socket(frontend_, "--frontend", config_.endpoints.frontend, curve);
  bind_socket(backend_, "--backend", config_.endpoints.backend, curve);

  // Hellos are periodic and idempotent: keep only a few queued while the sink is away.
  SocketOptions hello;
  hello.sndhwm = 4;
  hello.rcvhwm = 4;
  hello_ = make_socket(*context_, zmq::socket_type::push, hello);
  connect_socket(hello_, "--sink", config_.endpoints.sink, config_.security);

  instance_ = random_id();
}

Broker::~Broker() = default;

std::string Broker::frontend_endpoint() const { return frontend_.get(zmq::sockopt::last_endpoint); }
std::string Broker::backend_endpoint() const { return backend_.get(zmq::sockopt::last_endpoint); }

BrokerCounters Broker::counters() const noexcept {
  return BrokerCounters{
      forwarded_.load(std::memory_order_relaxed), hellos_.load(std::memory_order_relaxed),
      hellos_dropped_.load(std::memory_order_relaxed), held_count_.load(std::memory_order_relaxed),
      waits_.load(std::memory_order_relaxed)};
}

std::string Broker::metrics_text() const {
  const auto c = counters();
  auto d = [](std::uint64_t v) { return static_cast<double>(v); };
  MetricsText m;
  m.gauge_family("broker_info", "Identity of this broker: its instance id (value 1).",
                 {{"instance=\"" + label_value(instance_) + "\"", 1}});
  m.counter("broker_messages_forwarded_total", "Messages handed from the frontend to a worker.",
            d(c.forwarded));
  m.counter("broker_hellos_sent_total", "Broker hellos queued to the sink.", d(c.hellos));
  m.counter("broker_hellos_dropped_total",
            "Broker hellos not queued: the sink was not keeping up or not there.",
            d(c.hellos_dropped));
  m.counter("broker_backend_waits_total",
            "Times a message had to wait because no worker could take it (all busy or none).",
            d(c.waits));
  m.counter("broker_curve_refused_total", "CURVE clients refused: key not in --curve-authorized.",
            curve_ ? d(curve_->denied()) : 0.0);
  m.gauge("broker_messages_held",
          "Messages in hand waiting for a free worker (0 or 1; the rest wait in the frontend "
          "queue).",
          d(c.held));
  return m.str();
}

void Broker::send_hello() {
  const auto bytes = wire::encode(wire::BrokerHello{instance_});
  zmq::message_t msg(bytes.data(), bytes.size());
  if (hello_.send(msg, zmq::send_flags::dontwait)) {
    hellos_.fetch_add(1, std::memory_order_relaxed);
  } else {
    hellos_dropped_.fetch_add(1, std::memory_order_relaxed);
  }
}

bool Broker::flush_held() {
  const std::size_t parts = held_.size();
  const auto first_flags = parts > 1 ? zmq::send_flags::sndmore : zmq::send_flags::none;
  if (!backend_.send(held_[0], first_flags | zmq::send_flags::dontwait)) return false;
  // Once the first frame of a message is queued, ZeroMQ takes the rest of it atomically.
  for (std::size_t i = 1; i < parts; ++i) {
    (void)backend_.send(held_[i], i + 1 < parts ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
  held_.clear();
  held_count_.store(0, std::memory_order_relaxed);
  forwarded_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool Broker::pump() {
  for (std::size_t n = 0; n < config_.burst; ++n) {
    zmq::message_t frame;
    if (!frontend_.recv(frame, zmq::recv_flags::dontwait)) return true;  // frontend drained
    bool more = frame.more();
    held_.push_back(std::move(frame));
    while (more) {  // the remaining frames of a multipart message are already here
      zmq::message_t part;
      (void)frontend_.recv(part, zmq::recv_flags::none);
      more = part.more();
      held_.push_back(std::move(part));
    }
    if (!flush_held()) {
      held_count_.store(1, std::memory_order_relaxed);
      waits_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
  }
  return true;
}

void Broker::run(const StopSignal& stop) {
  spdlog::info("broker {} streaming {} -> {} (hwm {}), announcing itself to {}", instance_,
               frontend_endpoint(), backend_endpoint(), config_.hwm, config_.endpoints.sink);
  send_hello();
  auto now = steady_ms();
  auto next_hello = now + config_.hello_interval_ms;
  auto next_stats = now + config_.stats_interval_ms;
  auto stats_since = now;
  std::uint64_t stats_forwarded = forwarded_.load(std::memory_order_relaxed);

  std::array<zmq::pollitem_t, 3> items{{
      {nullptr, stop.fd(), ZMQ_POLLIN, 0},
      {frontend_.handle(), 0, ZMQ_POLLIN, 0},
      {backend_.handle(), 0, ZMQ_POLLOUT, 0},
  }};
  while (!stop.triggered()) {
    // Read the frontend only while we can hand a message on; otherwise wait for the backend and
    // let the frontend's HWM push back on whoever sends tasks.
    const bool holding = !held_.empty();
    items[1].events = holding ? 0 : ZMQ_POLLIN;
    items[2].events = holding ? ZMQ_POLLOUT : 0;
    const auto timeout = std::max<std::int64_t>(0, std::min(next_hello, next_stats) - steady_ms());
    try {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(timeout));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;  // a signal: the stop fd tells us whether to leave
      if (e.num() == ETERM) break;
      throw;
    }
    if ((items[0].revents & ZMQ_POLLIN) != 0) break;
    if (holding && (items[2].revents & ZMQ_POLLOUT) != 0) {
      if (flush_held()) (void)pump();
    } else if (!holding && (items[1].revents & ZMQ_POLLIN) != 0) {
      (void)pump();
    }

    now = steady_ms();
    if (now >= next_hello) {
      send_hello();
      next_hello = now + config_.hello_interval_ms;
    }
    if (now >= next_stats) {
      const auto total = forwarded_.load(std::memory_order_relaxed);
      const auto moved = total - stats_forwarded;
      const double seconds =
          static_cast<double>(std::max<std::int64_t>(1, now - stats_since)) / 1000.0;
      // An idle broker says so only at debug level, so its log stays readable for days.
      const auto level = moved > 0 || !held_.empty() ? spdlog::level::info : spdlog::level::debug;
      spdlog::log(level, "forwarded {} messages in {:.1f} s ({:.0f}/s), {} in total{}", moved,
                  seconds, static_cast<double>(moved) / seconds, total,
                  held_.empty() ? "" : "; waiting for workers");
      stats_forwarded = total;
      stats_since = now;
      next_stats = now + config_.stats_interval_ms;
    }
  }
  const auto c = counters();
  spdlog::info("broker {} stopping: forwarded {} messages{}", instance_, c.forwarded,
               held_.empty() ? "" : " (1 in hand dropped; the sink redelivers it)");
}

}  // namespace topicflow
