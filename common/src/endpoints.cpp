#include <topicflow/endpoints.hpp>

#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <string>

namespace topicflow {

void validate_endpoint(std::string_view flag, std::string_view endpoint) {
  auto bad = [&](std::string_view why) {
    throw std::invalid_argument(std::string(flag) + " '" + std::string(endpoint) +
                                "': " + std::string(why));
  };
  if (endpoint.starts_with("tcp://")) {
    auto rest = endpoint.substr(6);
    auto colon = rest.rfind(':');
    if (colon == std::string_view::npos || colon == 0) bad("expected tcp://HOST:PORT");
    auto port = rest.substr(colon + 1);
    if (port.empty()) bad("missing port");
    if (port != "*" && !std::all_of(port.begin(), port.end(), [](char c) {
          return std::isdigit(static_cast<unsigned char>(c));
        })) {
      bad("port is not a number");
    }
    if (port != "*" && (port.size() > 5 || std::stoi(std::string(port)) > 65535))
      bad("port out of range");
  } else if (endpoint.starts_with("ipc://")) {
    if (endpoint.size() == 6) bad("missing path");
  } else if (endpoint.starts_with("inproc://")) {
    if (endpoint.size() == 9) bad("missing name");
  } else {
    bad("expected tcp://HOST:PORT, ipc://PATH or inproc://NAME");
  }
}

void validate_endpoints(const Endpoints& e) {
  validate_endpoint("--frontend", e.frontend);
  validate_endpoint("--backend", e.backend);
  validate_endpoint("--sink", e.sink);
  validate_endpoint("--events", e.events);
}

}  // namespace topicflow
