#include "http_access.hpp"

#include <algorithm>
#include <cctype>
#include <cstddef>

namespace topicflow::sink::http {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  unsigned diff = a.size() == b.size() ? 0U : 1U;
  for (std::size_t i = 0; i < b.size(); ++i) {
    diff |= static_cast<unsigned>(
        static_cast<unsigned char>(a[i % std::max<std::size_t>(a.size(), 1)]) ^
        static_cast<unsigned char>(b[i]));
  }
  return diff == 0;
}

std::optional<Refusal> refuse_write(bool read_only, std::string_view token,
                                    const WriteHeaders& headers) {
  if (read_only) return Refusal{403, "this server is read-only (--http-read-only)", false};
  // A browser's cross-site request must not change anything: it carries an Origin (and
  // Sec-Fetch-Site) that does not name this server.
  if (headers.sec_fetch_site == "cross-site") {
    return Refusal{403, "cross-site request refused", false};
  }
  if (!headers.origin.empty()) {
    const auto scheme = headers.origin.find("://");
    const auto origin_host = lower(
        scheme == std::string_view::npos ? headers.origin : headers.origin.substr(scheme + 3));
    if (origin_host != lower(headers.host)) {
      return Refusal{403,
                     "cross-site request refused (Origin " + std::string(headers.origin) +
                         " is not this server)",
                     false};
    }
  }
  if (!token.empty()) {
    constexpr std::string_view kBearer = "Bearer ";
    if (headers.authorization.substr(0, kBearer.size()) != kBearer ||
        !constant_time_equal(headers.authorization.substr(kBearer.size()), token)) {
      return Refusal{401, "missing or wrong bearer token (Authorization: Bearer TOKEN)", true};
    }
  }
  return std::nullopt;
}

}  // namespace topicflow::sink::http
