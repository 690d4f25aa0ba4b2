#pragma once
// A plain HTTP/1.0 GET over loopback for tests of the roles' HTTP endpoints (/metrics, /healthz),
// and a loopback port free right now (for the sink, whose --http-port 0 means "off"; another
// process could still take it before the sink binds: tests that use it start the sink at once).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <regex>
#include <string>

namespace topicflow::testing {

struct HttpResponse {
  int status = 0;  // 0: nothing answered
  std::string body;
};

inline HttpResponse http_get(int port, const std::string& path) {
  HttpResponse response;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return response;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const timeval timeout{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  std::string raw;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char buffer[8192];
      for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;)
        raw.append(buffer, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  std::smatch m;
  if (std::regex_search(raw, m, std::regex(R"(^HTTP/1\.[01] (\d{3}))")))
    response.status = std::stoi(m[1]);
  if (const auto end = raw.find("\r\n\r\n"); end != std::string::npos)
    response.body = raw.substr(end + 4);
  return response;
}

// The value of an unlabelled sample in Prometheus text, -1 when it is missing.
inline double metric(const std::string& text, const std::string& name) {
  std::smatch m;
  if (std::regex_search(text, m, std::regex("(^|\n)" + name + " ([^\n]+)"))) return std::stod(m[2]);
  return -1;
}

inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

}  // namespace topicflow::testing
