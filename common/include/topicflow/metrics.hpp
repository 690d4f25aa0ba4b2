#pragma once
// Prometheus text metrics and a health endpoint for long-running processes.
//
// A role fills a MetricsText from a snapshot of its counters; MetricsServer serves it over HTTP
// on its own thread (a minimal HTTP/1.1 server: no HTTP library in the roles' binaries):
// GET /metrics (text exposition format 0.0.4) and GET /healthz ("ok", or 503 with the reason
// while the role reports itself unhealthy); anything else 404, methods other than GET/HEAD 405. The
// render callback runs on the server thread: it must be thread-safe (roles hand it an atomically
// published snapshot, never their live state).

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace topicflow {

// Builds the text exposition format. Names get the `topicflow_` prefix.
class MetricsText {
 public:
  MetricsText& counter(std::string_view name, std::string_view help, double value);
  MetricsText& gauge(std::string_view name, std::string_view help, double value);
  // One gauge with several labelled samples, e.g. {"job=\"a\",status=\"pending\"", 3}.
  MetricsText& gauge_family(std::string_view name, std::string_view help,
                            const std::vector<std::pair<std::string, double>>& samples);
  // Cumulative histogram: `bounds` are upper bounds (le), counts[i] observations <= bounds[i]
  // (not cumulative; this adds them up), `overflow` those above the last bound.
  MetricsText& histogram(std::string_view name, std::string_view help,
                         const std::vector<double>& bounds,
                         const std::vector<std::uint64_t>& counts, std::uint64_t overflow,
                         double sum);
  [[nodiscard]] const std::string& str() const noexcept { return text_; }

 private:
  void header(std::string_view name, std::string_view help, std::string_view type);
  std::string text_;
};

// Escapes a label value (backslash, quote, newline).
[[nodiscard]] std::string label_value(std::string_view raw);

// A fixed-bucket histogram, safe to observe from one thread while another snapshots it.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value) noexcept;
  void render(MetricsText& out, std::string_view name, std::string_view help) const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // bounds_.size() + 1 (overflow)
  std::atomic<std::uint64_t> sum_micros_{0};              // sum * 1e6, to stay lock-free
};

class MetricsServer {
 public:
  using Render = std::function<std::string()>;
  using Health = std::function<std::string()>;  // empty string: healthy; else the reason

  // Binds address:port (port 0 picks a free one) and starts serving; throws std::runtime_error
  // with a one-line reason when the port cannot be bound.
  MetricsServer(const std::string& address, int port, Render render, Health health = {});
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  [[nodiscard]] int port() const noexcept { return port_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

// How every role serves its metrics (--metrics-port/--metrics-address, add_metrics_options in
// config.hpp): nothing when `port` is 0 (off), otherwise a MetricsServer whose address is logged.
// Keep the result declared after what `render` and `health` read, so it stops serving first.
// Throws as MetricsServer does.
[[nodiscard]] std::unique_ptr<MetricsServer> serve_metrics(const std::string& address, int port,
                                                           MetricsServer::Render render,
                                                           MetricsServer::Health health = {});

}  // namespace topicflow
