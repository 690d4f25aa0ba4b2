// End-to-end tests of ZeroMQ CURVE: the real binaries with keys made by `topicflow keygen`, on
// private ipc:// endpoints (the CURVE handshake is the same on every transport). With CURVE on,
// an authorized producer and worker complete a job, while workers and producers with no key, an
// unauthorized key or the wrong server key get no task and register no topic. Every one of these
// peers would succeed if CURVE were off, so the test fails if CURVE is ever silently dropped.
#include "support/system.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace topicflow::testing {
namespace {

using namespace std::chrono_literals;

std::string numbered_topics(int n, const std::string& prefix) {
  std::string text;
  for (int i = 1; i <= n; ++i) text += prefix + " " + std::to_string(i) + "\n";
  return text;
}

class Curve : public ::testing::Test {
 protected:
  void SetUp() override {
    keys_ = sys_.dir() / "keys";
    std::filesystem::create_directory(keys_);
    const auto r = sys_.run({bin("topicflow"), "keygen", "--dir", keys_.string(), "server",
                             "worker", "producer", "intruder"},
                            30s);
    ASSERT_EQ(r.status.shell_code(), 0) << r.describe();
    std::filesystem::create_directory(keys_ / "clients");
    for (const char* name : {"worker.pub", "producer.pub"}) {
      std::filesystem::copy_file(keys_ / name, keys_ / "clients" / name);
    }
  }

  [[nodiscard]] std::string key(const std::string& file) const { return (keys_ / file).string(); }

  // The flags of a CURVE client with key pair `name` that trusts `server` as broker and sink.
  [[nodiscard]] std::vector<std::string> client(const std::string& name,
                                                const std::string& server = "server.pub") const {
    return {"--curve-secret-key", key(name + ".key"), "--curve-broker-key",
            key(server),          "--curve-sink-key", key(server)};
  }

  void start_servers() {
    sys_.start(
        "sink", "topicflow-sink",
        {"--db", sys_.db(), "--curve-secret-key", key("server.key"), "--curve-broker-key",
         key("server.pub"), "--curve-authorized", key("clients"), "--dispatch-timeout-ms", "2000"});
    sys_.start("broker", "topicflow-broker",
               {"--curve-secret-key", key("server.key"), "--curve-sink-key", key("server.pub"),
                "--curve-authorized", key("clients")});
  }

  CommandResult produce(const std::string& file, const std::string& job,
                        const std::vector<std::string>& extra, std::chrono::milliseconds timeout) {
    std::vector<std::string> argv{
        bin("topicflow-producer"), file, "--job", job, "--progress", "none"};
    for (auto& a : sys_.endpoint_args()) argv.push_back(a);
    for (const auto& a : extra) argv.push_back(a);
    return sys_.run(argv, timeout);
  }

  System sys_{"curve"};
  std::filesystem::path keys_;
};

TEST_F(Curve, OnlyAuthorizedPeersSubmitAndTakeTasks) {
  start_servers();
  // Intruders first: were CURVE off, they would be connected before the real worker and take
  // most of the tasks.
  auto rogue = [&](const std::string& id, std::vector<std::string> args) {
    args.insert(args.end(), {"--id", id, "--concurrency", "4"});
    sys_.start(id, "topicflow-worker", args);
  };
  rogue("rogue-plain", {});                     // no CURVE at all
  rogue("rogue-intruder", client("intruder"));  // a key the servers do not admit
  rogue("rogue-trusts-wrong-server",
        client("worker", "intruder.pub"));  // admitted key, wrong server
  std::this_thread::sleep_for(500ms);
  sys_.start("worker", "topicflow-worker", [&] {
    auto a = client("worker");
    a.insert(a.end(), {"--id", "good", "--handler", "sleep:5-15", "--concurrency", "2"});
    return a;
  }());

  // (a) the authorized producer's job completes, every task done by the authorized worker.
  const auto file = sys_.write_file("topics.txt", numbered_topics(40, "topic"));
  const auto good = produce(
      file, "good",
      [&] {
        auto a = client("producer");
        a.emplace_back("--wait");
        return a;
      }(),
      60s);
  EXPECT_EQ(good.status.shell_code(), 0) << good.describe() << "\nsink log:\n" << sys_.log("sink");

  // (c) producers with no key, an unadmitted key or a wrong sink key register nothing.
  struct Intruder {
    std::string job;
    std::vector<std::string> args;
  };
  const std::vector<Intruder> intruders{{"plain", {}},
                                        {"intruder", client("intruder")},
                                        {"wrong-server", client("producer", "intruder.pub")}};
  for (const auto& [job, args] : intruders) {
    auto a = args;
    a.insert(a.end(), {"--connect-timeout-ms", "1500"});
    const auto r = produce(file, job, a, 30s);
    EXPECT_NE(r.status.shell_code(), 0) << job << ": the sink answered; " << r.describe();
    EXPECT_NE(r.err.find("cannot reach the sink"), std::string::npos)
        << job << ": " << r.describe();
  }

  sys_.stop_all();
  DbReader db(sys_.db());
  EXPECT_EQ(db.scalar("SELECT count(*) FROM topics WHERE job = 'good' AND status = 'completed' "
                      "AND worker = 'good'"),
            40)
      << "every topic completed by the authorized worker; sink log:\n"
      << sys_.log("sink");
  EXPECT_EQ(db.scalar("SELECT count(*) FROM topics WHERE worker LIKE 'rogue%'"), 0)
      << "(b) a worker without the right keys must receive no task";
  EXPECT_EQ(db.scalar("SELECT count(*) FROM topics WHERE job <> 'good'"), 0)
      << "(c) producers without the right keys must register no topic";
  for (const char* id : {"rogue-plain", "rogue-intruder", "rogue-trusts-wrong-server"}) {
    EXPECT_NE(sys_.log(id).find("stopped: 0 completed, 0 failed, 0 released"), std::string::npos)
        << id << " log:\n"
        << sys_.log(id);
  }
  // The refusals the servers can see are logged with the key (the plain and wrong-server peers
  // fail before any key is presented).
  const auto intruder_pub = read_text(keys_ / "intruder.pub");
  const auto at = intruder_pub.find("public-key = \"");
  ASSERT_NE(at, std::string::npos) << intruder_pub;
  const auto intruder_key = intruder_pub.substr(at + 14, 40);
  EXPECT_NE(sys_.log("sink").find("refused client key " + intruder_key), std::string::npos)
      << sys_.log("sink");
  EXPECT_NE(sys_.log("broker").find("refused client key " + intruder_key), std::string::npos)
      << sys_.log("broker");
}

TEST_F(Curve, BadKeysAreOneLineStartupErrors) {
  const auto missing = key("missing.key");
  const auto d = sys_.endpoint_args();
  struct Case {
    std::string binary;
    std::vector<std::string> args;
    std::string expect;
  };
  const std::vector<Case> cases{
      {"topicflow-broker",
       {"--curve-secret-key", missing, "--curve-sink-key", key("server.pub"), "--curve-authorized",
        key("clients")},
       "No such file"},
      {"topicflow-sink",
       {"--db", sys_.db(), "--curve-secret-key", key("server.key"), "--curve-broker-key",
        key("server.pub")},
       "--curve-authorized is missing"},
      {"topicflow-worker",
       {"--curve-secret-key", key("worker.pub"), "--curve-broker-key", key("server.pub"),
        "--curve-sink-key", key("server.pub")},
       "no secret-key"},
      {"topicflow-worker", {"--curve-broker-key", key("server.pub")}, "needs --curve-secret-key"},
      {"topicflow-producer",
       {"x.txt", "--curve-secret-key", key("producer.key"), "--curve-sink-key", key("server.key")},
       "holds a secret key"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> argv{bin(c.binary)};
    argv.insert(argv.end(), d.begin(), d.end());
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    const auto r = sys_.run(argv, 30s);
    EXPECT_EQ(r.status.shell_code(), 2) << c.binary << ": " << r.describe();
    EXPECT_EQ(lines_of(r.err).size(), 1U) << c.binary << ": " << r.describe();
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.binary << ": " << r.describe();
  }
  EXPECT_FALSE(std::filesystem::exists(sys_.db()))
      << "the sink stopped before opening the database";

  const auto before = read_text(keys_ / "server.key");
  const auto again = sys_.run({bin("topicflow"), "keygen", "--dir", keys_.string(), "server"}, 30s);
  EXPECT_EQ(again.status.shell_code(), 1) << again.describe();
  EXPECT_EQ(lines_of(again.err).size(), 1U) << again.describe();
  EXPECT_NE(again.err.find("--force"), std::string::npos) << again.describe();
  EXPECT_EQ(read_text(keys_ / "server.key"), before) << "keygen must not overwrite a key";
}

// `topicflow run` uses private ipc:// endpoints without CURVE: a deployment's CURVE variables in
// the environment must not reach (and break) its children.
TEST_F(Curve, RunIgnoresCurveEnvironment) {
  const auto file = sys_.write_file("topics.txt", numbered_topics(10, "local"));
  const auto r = sys_.run(
      {bin("topicflow"), "run", "--db", sys_.db(), "--workers", "2", "--progress", "none", file},
      60s,
      {{"TOPICFLOW_CURVE_SECRET_KEY", key("worker.key")},
       {"TOPICFLOW_CURVE_BROKER_KEY", key("server.pub")},
       {"TOPICFLOW_CURVE_SINK_KEY", key("server.pub")},
       {"TOPICFLOW_CURVE_AUTHORIZED", key("clients")}});
  ASSERT_EQ(r.status.shell_code(), 0) << r.describe();
  EXPECT_EQ(DbReader(sys_.db()).scalar("SELECT count(*) FROM topics WHERE status = 'completed'"),
            10);
}

}  // namespace
}  // namespace topicflow::testing
