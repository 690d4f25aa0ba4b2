#pragma once
// What every route of the sink's HTTP server (http_api.cpp) needs from a request and for its
// response, without a socket: the request target parsed from its raw (percent-encoded) form,
// integer query parameters within a range, JSON bodies and the one-line error body of SPEC §9
// ({"error": "..."}).

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace topicflow::sink::http {

struct Target {
  std::vector<std::string> segments;  // decoded path segments, e.g. {"v1", "jobs", "a/b"}
  std::map<std::string, std::string> query;
};

// The path's segments and the query's parameters, percent-decoded ('+' is a space in the query
// only); a trailing '/' adds no segment. nullopt: not a path, or bad percent-encoding.
[[nodiscard]] std::optional<Target> parse_target(std::string_view raw);

// `body` as JSON with `status`.
void send_json(httplib::Response& res, int status, const nlohmann::json& body);

// A one-line error with `status`. Returns true (the request was answered), so that handlers can
// `return fail(...)`.
bool fail(httplib::Response& res, int status, std::string_view reason);

// Query parameter `name` as an integer in [low, high], `fallback` when absent. nullopt when it is
// not such an integer: the 400 is in `res` already.
[[nodiscard]] std::optional<std::int64_t> int_param(const Target& t, const std::string& name,
                                                    std::int64_t low, std::int64_t high,
                                                    std::int64_t fallback, httplib::Response& res);

}  // namespace topicflow::sink::http
