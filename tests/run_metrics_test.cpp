// `topicflow run --metrics-port P`: the sink serves its metrics on P, the broker on P+1 and
// worker i on P+1+i, while the run is going; a range past 65535 is a bad flag. Label e2e.
#include "support/http.hpp"
#include "support/system.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace topicflow::testing {
namespace {

using namespace std::chrono_literals;

// Body of GET http://127.0.0.1:port/path (HTTP/1.0), empty when nothing answers with 200.
// The body of a 200 answer, empty otherwise.
std::string http_get(int port, const std::string& path) {
  auto r = topicflow::testing::http_get(port, path);
  return r.status == 200 ? std::move(r.body) : std::string();
}

bool port_free(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// A base port with `n` free ports from it (checked now; another process could still take one).
int free_port_range(int n) {
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> base(20000, 60000);
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int p = base(rng);
    bool all = true;
    for (int i = 0; i < n && all; ++i) all = port_free(p + i);
    if (all) return p;
  }
  throw std::runtime_error("no range of free ports found");
}

TEST(RunMetrics, EachRoleServesItsMetricsOnItsOwnPort) {
  System sys;
  constexpr int kWorkers = 2;
  const int port = free_port_range(kWorkers + 2);
  std::string topics;
  for (int i = 1; i <= 40; ++i) topics += "topic " + std::to_string(i) + "\n";
  const auto file = sys.write_file("topics.txt", topics);
  SpawnOptions options;
  options.stdout_path = (sys.dir() / "run.out").string();
  options.stderr_path = (sys.dir() / "run.err").string();
  options.stdin_null = true;
  options.die_with_parent = true;
  ChildProcess run({bin("topicflow"), "run", "--db", sys.db(), "--progress", "none", "--workers",
                    std::to_string(kWorkers), "--concurrency", "2", "--handler", "sleep:150",
                    "--metrics-port", std::to_string(port), file},
                   options);

  // role -> (port, a metric it must serve)
  const std::map<std::string, std::pair<int, std::string>> expected{
      {"sink", {port, "topicflow_sink_updates_committed_total"}},
      {"broker", {port + 1, "topicflow_broker_messages_forwarded_total"}},
      {"worker 1", {port + 2, "topicflow_worker_slots 2"}},
      {"worker 2", {port + 3, "topicflow_worker_slots 2"}}};
  std::map<std::string, std::string> scraped;
  std::optional<ExitStatus> exit;
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (!(exit = run.wait_for(100ms)) && scraped.size() < expected.size()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    for (const auto& [role, want] : expected) {
      if (scraped.contains(role)) continue;
      auto body = http_get(want.first, "/metrics");
      if (body.find(want.second) != std::string::npos) scraped[role] = std::move(body);
    }
  }
  if (!exit) exit = run.wait_for(120s);
  ASSERT_TRUE(exit.has_value()) << "run did not finish";
  const auto out = read_text(sys.dir() / "run.out");
  ASSERT_EQ(exit->shell_code(), 0) << out << read_text(sys.dir() / "run.err");
  for (const auto& [role, want] : expected) {
    EXPECT_TRUE(scraped.contains(role)) << role << " served no '" << want.second << "' on port "
                                        << want.first << " while the run was going";
  }
  EXPECT_NE(scraped["worker 1"].find("handler=\"sleep:150\""), std::string::npos)
      << scraped["worker 1"];
  const std::string url = "http://127.0.0.1:";
  EXPECT_NE(out.find("metrics: sink " + url + std::to_string(port) + "/metrics, broker " + url +
                     std::to_string(port + 1) + "/metrics, workers " + url +
                     std::to_string(port + 2) + ".." + std::to_string(port + 3) + "/metrics"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("40 completed"), std::string::npos) << out;
}

TEST(RunMetrics, APortRangePast65535IsABadFlag) {
  System sys;
  const auto file = sys.write_file("topics.txt", "a\n");
  const auto r = sys.run({bin("topicflow"), "run", "--db", sys.db(), "--workers", "4",
                          "--metrics-port", "65531", file});
  EXPECT_EQ(r.status.shell_code(), 2) << r.describe();
  EXPECT_EQ(lines_of(r.err).size(), 1U) << r.describe();
  EXPECT_NE(r.err.find("65536"), std::string::npos) << r.describe();
}

}  // namespace
}  // namespace topicflow::testing
