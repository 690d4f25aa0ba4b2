#pragma once
// The four addresses of the system, which every role takes (README, "The processes"): kept
// apart from the command-line helpers (config.hpp) so that a role's header does not bring CLI11
// to everything that includes it.

#include <string>
#include <string_view>

namespace topicflow {

struct Endpoints {
  std::string frontend = "tcp://127.0.0.1:5557";  // broker PULL (binds)
  std::string backend = "tcp://127.0.0.1:5558";   // broker PUSH (binds)
  std::string sink = "tcp://127.0.0.1:5559";      // sink PULL (binds)
  std::string events = "tcp://127.0.0.1:5560";    // sink PUB (binds)
};

// Checks that an endpoint looks like tcp://host:port, ipc://path or inproc://name; throws
// std::invalid_argument with a readable reason otherwise.
void validate_endpoint(std::string_view flag, std::string_view endpoint);
void validate_endpoints(const Endpoints& endpoints);

}  // namespace topicflow
