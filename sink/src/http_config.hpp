#pragma once
// The sink's HTTP options as the server takes them: address and port (--http-port and
// --http-address, or their old names --metrics-port and --metrics-address), the token read from
// --http-token-file, read-only mode, the body limit. validate_http, http_port and read_token
// (sink.hpp) check and read the same options. Throws what read_token throws.

#include "http_api.hpp"

#include <topicflow/sink.hpp>

namespace topicflow::sink {

// The server's options for `cfg` (whose http_port(cfg) is not 0).
[[nodiscard]] HttpOptions http_options(const SinkConfig& cfg);

}  // namespace topicflow::sink
