#include <topicflow/metrics.hpp>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

namespace topicflow {

void MetricsText::header(std::string_view name, std::string_view help, std::string_view type) {
  text_ += fmt::format("# HELP topicflow_{} {}\n# TYPE topicflow_{} {}\n", name, help, name, type);
}

MetricsText& MetricsText::counter(std::string_view name, std::string_view help, double value) {
  header(name, help, "counter");
  text_ += fmt::format("topicflow_{} {}\n", name, value);
  return *this;
}

MetricsText& MetricsText::gauge(std::string_view name, std::string_view help, double value) {
  header(name, help, "gauge");
  text_ += fmt::format("topicflow_{} {}\n", name, value);
  return *this;
}

MetricsText& MetricsText::gauge_family(std::string_view name, std::string_view help,
                                       const std::vector<std::pair<std::string, double>>& samples) {
  header(name, help, "gauge");
  for (const auto& [labels, value] : samples)
    text_ += fmt::format("topicflow_{}{{{}}} {}\n", name, labels, value);
  return *this;
}

std::string label_value(std::string_view raw) {
  std::string out;
  for (char c : raw) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

MetricsText& MetricsText::histogram(std::string_view name, std::string_view help,
                                    const std::vector<double>& bounds,
                                    const std::vector<std::uint64_t>& counts,
                                    std::uint64_t overflow, double sum) {
  header(name, help, "histogram");
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    cumulative += i < counts.size() ? counts[i] : 0;
    text_ += fmt::format("topicflow_{}_bucket{{le=\"{}\"}} {}\n", name, bounds[i], cumulative);
  }
  cumulative += overflow;
  text_ += fmt::format("topicflow_{}_bucket{{le=\"+Inf\"}} {}\n", name, cumulative);
  text_ += fmt::format("topicflow_{}_sum {}\n", name, sum);
  text_ += fmt::format("topicflow_{}_count {}\n", name, cumulative);
  return *this;
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      counts_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {}

void Histogram::observe(double value) noexcept {
  std::size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(static_cast<std::uint64_t>(std::llround(std::max(value, 0.0) * 1e6)),
                        std::memory_order_relaxed);
}

void Histogram::render(MetricsText& out, std::string_view name, std::string_view help) const {
  std::vector<std::uint64_t> counts(bounds_.size());
  for (std::size_t i = 0; i < bounds_.size(); ++i)
    counts[i] = counts_[i].load(std::memory_order_relaxed);
  out.histogram(name, help, bounds_, counts,
                counts_[bounds_.size()].load(std::memory_order_relaxed),
                static_cast<double>(sum_micros_.load(std::memory_order_relaxed)) / 1e6);
}

struct MetricsServer::Impl {
  httplib::Server server;
  std::thread thread;
};

MetricsServer::MetricsServer(const std::string& address, int port, Render render, Health health)
    : impl_(std::make_unique<Impl>()) {
  impl_->server.Get("/metrics",
                    [render = std::move(render)](const httplib::Request&, httplib::Response& res) {
                      res.set_content(render(), "text/plain; version=0.0.4; charset=utf-8");
                    });
  impl_->server.Get("/healthz",
                    [health = std::move(health)](const httplib::Request&, httplib::Response& res) {
                      const std::string problem = health ? health() : std::string();
                      if (problem.empty()) {
                        res.set_content("ok\n", "text/plain");
                      } else {
                        res.status = 503;
                        res.set_content(problem + "\n", "text/plain");
                      }
                    });
  if (port == 0) {
    port_ = impl_->server.bind_to_any_port(address);
  } else {
    port_ = impl_->server.bind_to_port(address, port) ? port : -1;
  }
  if (port_ <= 0) {
    throw std::runtime_error("cannot serve metrics on " + address + ":" + std::to_string(port) +
                             " (address in use or not available)");
  }
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
}

MetricsServer::~MetricsServer() {
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::unique_ptr<MetricsServer> serve_metrics(const std::string& address, int port,
                                             MetricsServer::Render render,
                                             MetricsServer::Health health) {
  if (port == 0) return nullptr;
  auto server =
      std::make_unique<MetricsServer>(address, port, std::move(render), std::move(health));
  spdlog::info("metrics on http://{}:{}/metrics, health on /healthz", address, server->port());
  return server;
}

}  // namespace topicflow
