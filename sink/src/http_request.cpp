#include "http_request.hpp"

#include "api_json.hpp"

#include <algorithm>
#include <exception>

namespace topicflow::sink::http {

std::optional<Target> parse_target(std::string_view raw) {
  Target t;
  const auto question = raw.find('?');
  const auto path = raw.substr(0, question);
  if (path.empty() || path.front() != '/') return std::nullopt;
  std::size_t start = 1;
  while (start <= path.size()) {
    const auto slash = std::min(path.find('/', start), path.size());
    auto segment = api::percent_decode(path.substr(start, slash - start), false);
    if (!segment) return std::nullopt;
    t.segments.push_back(std::move(*segment));
    start = slash + 1;
  }
  if (!t.segments.empty() && t.segments.back().empty()) t.segments.pop_back();  // trailing '/'
  if (question != std::string_view::npos) {
    auto query = raw.substr(question + 1);
    while (!query.empty()) {
      const auto amp = std::min(query.find('&'), query.size());
      const auto pair = query.substr(0, amp);
      const auto eq = pair.find('=');
      auto name = api::percent_decode(pair.substr(0, eq), true);
      auto value = api::percent_decode(
          eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), true);
      if (!name || !value) return std::nullopt;
      if (!name->empty()) t.query[*name] = std::move(*value);
      query = amp < query.size() ? query.substr(amp + 1) : std::string_view();
    }
  }
  return t;
}

void send_json(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(api::dump(body), "application/json");
}

bool fail(httplib::Response& res, int status, std::string_view reason) {
  res.status = status;
  res.set_content(api::error_body(reason), "application/json");
  return true;
}

std::optional<std::int64_t> int_param(const Target& t, const std::string& name, std::int64_t low,
                                      std::int64_t high, std::int64_t fallback,
                                      httplib::Response& res) {
  const auto it = t.query.find(name);
  if (it == t.query.end()) return fallback;
  try {
    std::size_t used = 0;
    const auto v = std::stoll(it->second, &used);
    if (used == it->second.size() && v >= low && v <= high) return v;
  } catch (const std::exception&) {
  }
  fail(res, 400,
       name + " must be an integer from " + std::to_string(low) + " to " + std::to_string(high));
  return std::nullopt;
}

}  // namespace topicflow::sink::http
