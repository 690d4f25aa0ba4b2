#pragma once
// The sink's HTTP server (one port): the API under /v1 (docs/api.md), the dashboard at /
// (sink/web, compiled in), /metrics and /healthz. Runs cpp-httplib on threads of its own:
//   - reads go to read-only connections (api_reads.hpp), one per request thread at a time;
//   - submissions and job actions go to the sink's loop through the ApiInbox and are answered
//     after their commit; the handler threads never touch the writer;
//   - live views (/v1/events, ?wait=) follow the snapshot the loop publishes after every commit.
// Security (SPEC §9): a bearer token for writes when configured, read-only mode, cross-site
// browser requests refused, bounded bodies and request times.
// Constructing binds the port (throws std::runtime_error with a one-line reason); destroying
// stops the server and its live streams.

#include "api_inbox.hpp"
#include "sink_metrics.hpp"

#include <cstddef>
#include <memory>
#include <string>

namespace topicflow::sink {

struct HttpOptions {
  std::string address = "127.0.0.1";
  int port = 0;       // 0 here: pick a free port (the caller decides whether to serve at all)
  std::string token;  // writes need "Authorization: Bearer <token>" when not empty
  bool read_only = false;
  std::size_t max_body_bytes = 32U << 20U;
  std::string version;  // shown by GET /v1/server
};

class HttpApi {
 public:
  HttpApi(HttpOptions options, std::string db_path, ApiInbox& inbox,
          const SharedSnapshot& snapshot);
  ~HttpApi();
  HttpApi(const HttpApi&) = delete;
  HttpApi& operator=(const HttpApi&) = delete;

  [[nodiscard]] int port() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// True for 127.0.0.0/8, ::1 and localhost.
[[nodiscard]] bool is_loopback_address(const std::string& address);

}  // namespace topicflow::sink
