#include <topicflow/metrics.hpp>

#include <spdlog/spdlog.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <utility>

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

// ---- MetricsServer: a minimal HTTP/1.1 server --------------------------------------------
//
// What Prometheus and a health check need and nothing else: GET (or HEAD) of /metrics and
// /healthz, one connection at a time, `Connection: close`, each connection bounded to
// kConnectionMs so a slow client cannot hold it. Written against the socket API so that a
// role's binary does not link an HTTP library (cpp-httplib brought OpenSSL, zlib, brotli and
// their relocations into every process start, for an endpoint that is off by default).

namespace {

constexpr std::int64_t kConnectionMs = 2000;
constexpr std::size_t kMaxRequestBytes = 8192;

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : fd(std::exchange(other.fd, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    std::swap(fd, other.fd);
    return *this;
  }
};

std::int64_t now_steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Waits for `events` on fd until `deadline_ms`; false on timeout or error.
bool wait_for(int fd, short events, std::int64_t deadline_ms) {
  for (;;) {
    const auto left = deadline_ms - now_steady_ms();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return false;
  }
}

Fd bind_listener(const std::string& address, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const auto service = std::to_string(port);
  if (::getaddrinfo(address.c_str(), service.c_str(), &hints, &found) != 0) return Fd{};
  Fd listener;
  for (auto* ai = found; ai != nullptr && listener.fd < 0; ai = ai->ai_next) {
    Fd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (fd.fd < 0) continue;
    const int one = 1;
    ::setsockopt(fd.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd.fd, 64) == 0)
      listener = std::move(fd);
  }
  ::freeaddrinfo(found);
  return listener;
}

int bound_port(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return -1;
  if (addr.ss_family == AF_INET)
    return ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
  if (addr.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);
  return -1;
}

std::string reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
  }
}

}  // namespace

struct MetricsServer::Impl {
  Fd listener;
  Fd stop;  // eventfd: written by the destructor
  Render render;
  Health health;
  std::thread thread;

  void serve() {
    for (;;) {
      std::array<pollfd, 2> fds{{{listener.fd, POLLIN, 0}, {stop.fd, POLLIN, 0}}};
      if (::poll(fds.data(), fds.size(), -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[1].revents != 0) return;
      if ((fds[0].revents & POLLIN) == 0) continue;
      const Fd connection(::accept4(listener.fd, nullptr, nullptr, SOCK_CLOEXEC));
      if (connection.fd >= 0) answer(connection.fd);
    }
  }

  void answer(int fd) {
    const auto deadline = now_steady_ms() + kConnectionMs;
    std::string request;
    std::array<char, 2048> buffer{};
    while (request.find("\r\n\r\n") == std::string::npos &&
           request.find("\n\n") == std::string::npos) {
      if (request.size() > kMaxRequestBytes || !wait_for(fd, POLLIN, deadline)) return;
      const auto n = ::recv(fd, buffer.data(), buffer.size(), 0);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        if (request.empty()) return;
        break;  // the client sent its request and shut down its side
      }
      request.append(buffer.data(), static_cast<std::size_t>(n));
    }
    // "GET /metrics?x=y HTTP/1.1"
    const auto line = request.substr(0, request.find_first_of("\r\n"));
    const auto first_space = line.find(' ');
    const auto second_space = line.find(' ', first_space + 1);
    int status = 200;
    std::string body;
    std::string type = "text/plain; charset=utf-8";
    const auto method = line.substr(0, first_space);
    if (first_space == std::string::npos || second_space == std::string::npos) {
      status = 400;
      body = "bad request\n";
    } else if (method != "GET" && method != "HEAD") {
      status = 405;
      body = "only GET\n";
    } else {
      auto path = line.substr(first_space + 1, second_space - first_space - 1);
      path = path.substr(0, path.find('?'));
      try {
        if (path == "/metrics") {
          body = render ? render() : std::string();
          type = "text/plain; version=0.0.4; charset=utf-8";
        } else if (path == "/healthz") {
          const std::string problem = health ? health() : std::string();
          status = problem.empty() ? 200 : 503;
          body = problem.empty() ? "ok\n" : problem + "\n";
        } else {
          status = 404;
          body = "not found\n";
        }
      } catch (const std::exception& e) {
        status = 500;
        body = std::string(e.what()) + "\n";
      }
    }
    std::string response = fmt::format(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        status, reason_phrase(status), type, body.size(),
        status == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (method != "HEAD") response += body;
    std::size_t sent = 0;
    while (sent < response.size()) {
      const auto n = ::send(fd, response.data() + sent, response.size() - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<std::size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!wait_for(fd, POLLOUT, deadline)) return;
      } else {
        return;
      }
    }
  }
};

MetricsServer::MetricsServer(const std::string& address, int port, Render render, Health health)
    : impl_(std::make_unique<Impl>()) {
  impl_->render = std::move(render);
  impl_->health = std::move(health);
  impl_->listener = bind_listener(address, port);
  port_ = impl_->listener.fd >= 0 ? bound_port(impl_->listener.fd) : -1;
  if (port_ <= 0) {
    throw std::runtime_error("cannot serve metrics on " + address + ":" + std::to_string(port) +
                             " (address in use or not available)");
  }
  impl_->stop = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (impl_->stop.fd < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
  impl_->thread = std::thread([impl = impl_.get()] { impl->serve(); });
}

MetricsServer::~MetricsServer() {
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(impl_->stop.fd, &one, sizeof one);
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
