#include "http_config.hpp"

#include <cstddef>
#include <fstream>
#include <stdexcept>
#include <string>

namespace topicflow {

int http_port(const SinkConfig& cfg) {
  return cfg.http_port > 0 ? cfg.http_port : cfg.metrics_port;
}

std::string read_token(const std::string& path) {
  if (path.empty()) return {};
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) {
    throw std::invalid_argument("--http-token-file: cannot read '" + path + "'");
  }
  const auto first = line.find_first_not_of(" \t\r\n");
  const auto last = line.find_last_not_of(" \t\r\n");
  if (first == std::string::npos) {
    throw std::invalid_argument("--http-token-file: '" + path +
                                "' holds no token on its first line");
  }
  return line.substr(first, last - first + 1);
}

void validate_http(const SinkConfig& cfg) {
  if (cfg.http_port > 0 && cfg.metrics_port > 0 && cfg.http_port != cfg.metrics_port) {
    throw std::invalid_argument(
        "--metrics-port is the old name of --http-port (one server serves the API, the dashboard "
        "and /metrics): give one of them, or the same port");
  }
  if (http_port(cfg) == 0) return;
  (void)read_token(cfg.http_token_file);
  const auto& address = cfg.http_port > 0 ? cfg.http_address : cfg.metrics_address;
  if (!sink::is_loopback_address(address) && cfg.http_token_file.empty() && !cfg.http_read_only) {
    throw std::invalid_argument("--http-address " + address +
                                " is reachable from other hosts: give --http-token-file (writes "
                                "need its token) or --http-read-only");
  }
}

namespace sink {

HttpOptions http_options(const SinkConfig& cfg) {
  HttpOptions options;
  options.address = cfg.http_port > 0 ? cfg.http_address : cfg.metrics_address;
  options.port = http_port(cfg);
  options.token = read_token(cfg.http_token_file);
  options.read_only = cfg.http_read_only;
  options.max_body_bytes = static_cast<std::size_t>(cfg.http_max_body_bytes);
  options.version = TOPICFLOW_VERSION;
  return options;
}

}  // namespace sink
}  // namespace topicflow
