#pragma once
// Who may change anything through the sink's HTTP server (SPEC §9), decided from a request's
// headers alone: nobody on a read-only server (--http-read-only), no cross-site browser request
// (Sec-Fetch-Site: cross-site, or an Origin that is not the Host), and only bearers of the token
// when one is configured (--http-token-file; compared in constant time). Reads are open to all
// who reach the port.

#include <optional>
#include <string>
#include <string_view>

namespace topicflow::sink::http {

// The headers that decide (empty: absent).
struct WriteHeaders {
  std::string_view sec_fetch_site;
  std::string_view origin;
  std::string_view host;
  std::string_view authorization;
};

struct Refusal {
  int status = 403;
  std::string reason;          // one line
  bool ask_for_token = false;  // answer with WWW-Authenticate: Bearer
};

// nullopt: the write may go ahead.
[[nodiscard]] std::optional<Refusal> refuse_write(bool read_only, std::string_view token,
                                                  const WriteHeaders& headers);

// `s` in ASCII lower case (header values and host names compare without case).
[[nodiscard]] std::string lower(std::string_view s);

// a == b, in a time that does not depend on where they differ.
[[nodiscard]] bool constant_time_equal(std::string_view a, std::string_view b);

}  // namespace topicflow::sink::http
