// End-to-end tests: the real binaries as separate processes on private ipc:// endpoints. Every
// test asserts the database's final state, read with SQLite after the sink has stopped.
#include "support/http.hpp"
#include "support/proc.hpp"
#include "support/system.hpp"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <zmq.hpp>

#include <chrono>
#include <string>
#include <thread>

namespace topicflow::testing {
namespace {

using namespace std::chrono_literals;

const std::string kTopics = std::string(TOPICFLOW_EXAMPLES_DIR) + "/topics.txt";

std::string numbered_topics(int n, const std::string& prefix = "topic") {
  std::string text;
  for (int i = 1; i <= n; ++i) text += prefix + " " + std::to_string(i) + "\n";
  return text;
}

// Exactly one line on stderr, e.g. "topicflow: error: ...".
void expect_one_line(const CommandResult& r) {
  EXPECT_EQ(lines_of(r.err).size(), 1U) << "expected a one-line error; " << r.describe();
}

class EndToEnd : public ::testing::Test {
 protected:
  System sys_;
};

TEST_F(EndToEnd, RunCompletesEveryTopic) {
  const auto r = sys_.run({bin("topicflow"), "run", "--db", sys_.db(), "--handler", "sleep:1-5",
                           "--workers", "4", "--concurrency", "2", "--progress", "none", kTopics});
  ASSERT_EQ(r.status.shell_code(), 0) << r.describe();
  DbReader db(sys_.db());
  EXPECT_TRUE(all_completed(db, "default", 288)) << r.describe();
  EXPECT_EQ(db.scalar("SELECT count(*) FROM topics WHERE status = 'completed' AND attempts >= 1 "
                      "AND error IS NULL"),
            288);
  EXPECT_NE(r.out.find("288 completed"), std::string::npos) << "summary: " << r.out;
}

TEST_F(EndToEnd, ResubmissionLeavesCompletedRowsAlone) {
  sys_.start_all(2, {}, {"--handler", "sleep:1-3", "--concurrency", "4"});
  const auto producer = [&] {
    return sys_.run({bin("topicflow-producer"), kTopics, "--wait", "--progress", "none",
                     "--log-level", "info", "--frontend", sys_.endpoint("frontend"), "--backend",
                     sys_.endpoint("backend"), "--sink", sys_.endpoint("sink"), "--events",
                     sys_.endpoint("events")});
  };
  const auto first = producer();
  ASSERT_EQ(first.status.shell_code(), 0) << first.describe();

  // --wait returned: all 288 are committed (read-only reader beside the running sink, WAL).
  std::map<std::string, Row> before = DbReader(sys_.db()).rows("default");
  ASSERT_EQ(before.size(), 288U) << "the first submission never completed; sink log:\n"
                                 << sys_.log("sink");

  // The second producer's --wait returns only once the job has nothing pending or running in
  // the sink's committed state: had the resubmission put a row back to pending, that rerun would
  // have been committed (attempts and updated_at changed) before it returns.
  const auto second = producer();
  ASSERT_EQ(second.status.shell_code(), 0) << second.describe();
  EXPECT_NE(second.err.find("skipped_completed 288"), std::string::npos) << second.describe();
  sys_.stop_all();

  DbReader db(sys_.db());
  const auto after = db.rows("default");
  ASSERT_EQ(after.size(), 288U);
  int changed = 0;
  for (const auto& [key, row] : before) {
    if (after.at(key) != row) {
      ++changed;
      ADD_FAILURE() << "row '" << key << "' changed: attempts " << row.attempts << " -> "
                    << after.at(key).attempts << ", updated_at " << row.updated_at << " -> "
                    << after.at(key).updated_at << ", status " << row.status << " -> "
                    << after.at(key).status;
      if (changed > 5) break;
    }
  }
}

// The producer's job actions (--pause, --resume, --cancel, --delete) reach the sink as control
// messages: each changes what the jobs table and the rows say, and a refused one (delete while
// topics wait, an unknown job) exits 1 with the sink's reason.
TEST_F(EndToEnd, ProducerPausesResumesCancelsAndDeletesAJob) {
  sys_.start_all(0);  // no workers: the topics wait, pending
  const auto producer = [&](std::vector<std::string> args) {
    std::vector<std::string> argv{bin("topicflow-producer"), "--progress", "none"};
    for (auto& a : sys_.endpoint_args()) argv.push_back(a);
    argv.insert(argv.end(), args.begin(), args.end());
    return sys_.run(argv);
  };
  const auto file = sys_.write_file("ten.txt", numbered_topics(10));
  const auto submitted = producer({"--job", "j", file});
  ASSERT_EQ(submitted.status.shell_code(), 0) << submitted.describe();

  const auto paused = producer({"--pause", "--job", "j"});
  ASSERT_EQ(paused.status.shell_code(), 0) << paused.describe();
  DbReader db(sys_.db());
  EXPECT_EQ(db.scalar("SELECT paused FROM jobs WHERE name = 'j'"), 1);
  const auto resumed = producer({"--resume", "--job", "j"});
  ASSERT_EQ(resumed.status.shell_code(), 0) << resumed.describe();
  EXPECT_EQ(db.scalar("SELECT paused FROM jobs WHERE name = 'j'"), 0);

  const auto refused = producer({"--delete", "--job", "j"});
  EXPECT_EQ(refused.status.shell_code(), 1) << refused.describe();
  EXPECT_NE(refused.err.find("pending or running"), std::string::npos) << refused.describe();
  EXPECT_EQ(db.scalar("SELECT count(*) FROM topics WHERE job = 'j'"), 10) << "nothing deleted";

  const auto cancelled = producer({"--cancel", "--job", "j"});
  ASSERT_EQ(cancelled.status.shell_code(), 0) << cancelled.describe();
  EXPECT_EQ(db.scalar("SELECT count(*) FROM topics WHERE job = 'j' AND status = 'cancelled'"), 10);
  EXPECT_EQ(db.scalar("SELECT cancelled FROM jobs WHERE name = 'j'"), 10);

  const auto deleted = producer({"--delete", "--job", "j"});
  ASSERT_EQ(deleted.status.shell_code(), 0) << deleted.describe();
  EXPECT_EQ(db.scalar("SELECT count(*) FROM topics WHERE job = 'j'"), 0);
  EXPECT_EQ(db.scalar("SELECT count(*) FROM jobs WHERE name = 'j'"), 0);

  const auto unknown = producer({"--pause", "--job", "nope"});
  EXPECT_EQ(unknown.status.shell_code(), 1) << unknown.describe();
  EXPECT_NE(unknown.err.find("no job named 'nope'"), std::string::npos) << unknown.describe();
  const auto both = producer({"--pause", "--cancel", "--job", "j"});
  EXPECT_EQ(both.status.shell_code(), 2) << both.describe();
  expect_one_line(both);
}

TEST_F(EndToEnd, FailingHandlerEndsFailedWithTheErrorKept) {
  const auto file = sys_.write_file("topics.txt", numbered_topics(40));
  const auto r = sys_.run({bin("topicflow"), "run", "--db", sys_.db(), "--handler", "fail:1",
                           "--max-attempts", "2", "--retry-base-ms", "10", "--retry-max-ms", "50",
                           "--workers", "2", "--progress", "none", file});
  EXPECT_EQ(r.status.shell_code(), 1) << "some topics failed: run must exit 1; " << r.describe();
  DbReader db(sys_.db());
  const auto rows = db.rows("default");
  ASSERT_EQ(rows.size(), 40U) << r.describe();
  for (const auto& [key, row] : rows) {
    EXPECT_EQ(row.status, "failed") << key;
    EXPECT_EQ(row.attempts, 2) << key;
    ASSERT_TRUE(row.error.has_value()) << key << ": the last error must be kept";
    EXPECT_NE(row.error->find("fail"), std::string::npos) << key << ": " << *row.error;
  }
}

TEST_F(EndToEnd, StatusJsonMatchesTheDatabase) {
  const auto file = sys_.write_file("mixed.txt", numbered_topics(60));
  const auto r =
      sys_.run({bin("topicflow"), "run", "--db", sys_.db(), "--job", "mixed", "--handler",
                "fail:0.5", "--max-attempts", "1", "--workers", "2", "--progress", "none", file});
  ASSERT_FALSE(r.timed_out) << r.describe();
  const auto other = sys_.write_file("other.txt", numbered_topics(7, "other"));
  ASSERT_EQ(sys_.run({bin("topicflow"), "run", "--db", sys_.db(), "--job", "other", "--progress",
                      "none", other})
                .status.shell_code(),
            0);

  const auto bytes_before = read_text(sys_.db());
  const auto s =
      sys_.run({bin("topicflow"), "status", "--db", sys_.db(), "--json", "--errors", "5"});
  ASSERT_EQ(s.status.shell_code(), 0) << s.describe();
  EXPECT_EQ(read_text(sys_.db()), bytes_before) << "status must never write the database";
  const auto doc = nlohmann::json::parse(s.out);

  DbReader db(sys_.db());
  ASSERT_EQ(doc.at("jobs").size(), 2U) << s.out;
  for (const auto& job : doc.at("jobs")) {
    const auto name = job.at("job").get<std::string>();
    const auto counts = db.counts(name);
    std::int64_t total = 0;
    for (const char* status : {"pending", "running", "completed", "failed"}) {
      const auto expected = counts.contains(status) ? counts.at(status) : 0;
      EXPECT_EQ(job.at(status).get<std::int64_t>(), expected)
          << name << " " << status << ": " << s.out;
      total += expected;
    }
    EXPECT_EQ(job.at("total").get<std::int64_t>(), total) << name;
  }
  const auto failed = db.scalar("SELECT count(*) FROM topics WHERE error IS NOT NULL");
  ASSERT_GT(failed, 0) << "fail:0.5 over 60 topics should fail some";
  ASSERT_EQ(static_cast<std::int64_t>(doc.at("errors").size()), std::min<std::int64_t>(failed, 5))
      << s.out;
  const auto newest = db.scalar("SELECT max(updated_at) FROM topics WHERE error IS NOT NULL");
  EXPECT_EQ(doc.at("errors").at(0).at("updated_at").get<std::int64_t>(), newest)
      << "errors are newest first";
  const auto rows = db.rows("mixed");
  for (const auto& e : doc.at("errors")) {
    const auto key = e.at("key").get<std::string>();
    ASSERT_TRUE(rows.contains(key)) << key;
    const auto& row = rows.at(key);
    EXPECT_EQ(e.at("status").get<std::string>(), row.status) << key;
    EXPECT_EQ(e.at("attempts").get<std::int64_t>(), row.attempts) << key;
    EXPECT_EQ(e.at("error").get<std::string>(), row.error.value_or("")) << key;
    EXPECT_EQ(e.at("updated_at").get<std::int64_t>(), row.updated_at) << key;
  }
}

TEST_F(EndToEnd, StatusOfAMissingDatabaseIsAOneLineError) {
  const auto r =
      sys_.run({bin("topicflow"), "status", "--db", (sys_.dir() / "missing.db").string()});
  EXPECT_EQ(r.status.shell_code(), 1) << r.describe();
  expect_one_line(r);
  EXPECT_FALSE(std::filesystem::exists(sys_.dir() / "missing.db"))
      << "status must not create the database";
}

TEST_F(EndToEnd, BadFlagExitsTwoWithOneLine) {
  for (const char* binary : {"topicflow", "topicflow-broker", "topicflow-sink", "topicflow-worker",
                             "topicflow-producer"}) {
    std::vector<std::string> argv{bin(binary)};
    if (std::string(binary) == "topicflow") argv.emplace_back("run");
    argv.emplace_back("--no-such-flag");
    const auto r = sys_.run(argv, 30s);
    EXPECT_EQ(r.status.shell_code(), 2) << binary << ": " << r.describe();
    expect_one_line(r);
  }
  const auto r = sys_.run({bin("topicflow"), "run", "--workers", "zero", kTopics}, 30s);
  EXPECT_EQ(r.status.shell_code(), 2) << r.describe();
  expect_one_line(r);
}

TEST_F(EndToEnd, UnknownCommandNamesTheCommands) {
  const auto r = sys_.run({bin("topicflow"), "frobnicate"}, 30s);
  EXPECT_EQ(r.status.shell_code(), 2) << r.describe();
  expect_one_line(r);
  EXPECT_NE(r.err.find("unknown command 'frobnicate'"), std::string::npos) << r.describe();
  EXPECT_NE(r.err.find("run, status, keygen"), std::string::npos) << r.describe();
}

TEST_F(EndToEnd, EveryBinaryPrintsItsVersion) {
  for (const char* binary : {"topicflow", "topicflow-broker", "topicflow-sink", "topicflow-worker",
                             "topicflow-producer"}) {
    const auto r = sys_.run({bin(binary), "--version"}, 30s);
    EXPECT_EQ(r.status.shell_code(), 0) << binary << ": " << r.describe();
    EXPECT_EQ(r.out.rfind(std::string(binary) + " ", 0), 0U) << binary << ": " << r.describe();
    EXPECT_EQ(lines_of(r.out).size(), 1U) << r.describe();
  }
}

TEST_F(EndToEnd, RunChecksWhatItPassesOnBeforeStartingAnything) {
  for (const char* spec : {"bogus", "sleep:100-20"}) {
    const auto r = sys_.run(
        {bin("topicflow"), "run", "--db", sys_.db(), "--workers", "58", "--handler", spec, kTopics},
        30s);
    EXPECT_EQ(r.status.shell_code(), 2) << spec << ": " << r.describe();
    expect_one_line(r);  // once, not once per worker
    EXPECT_NE(r.err.find("bad --handler"), std::string::npos) << r.describe();
    EXPECT_FALSE(std::filesystem::exists(sys_.db())) << spec << ": no database file is created";
  }
}

TEST_F(EndToEnd, UnwritableDatabasePathIsAOneLineError) {
  const auto r = sys_.run(
      {bin("topicflow"), "run", "--db", "/proc/nope/x.db", "--progress", "none", kTopics}, 60s);
  EXPECT_NE(r.status.shell_code(), 0) << r.describe();
  EXPECT_FALSE(r.timed_out) << r.describe();
  expect_one_line(r);
  EXPECT_NE(r.err.find("/proc/nope/x.db"), std::string::npos) << r.describe();

  std::vector<std::string> argv{bin("topicflow-sink"), "--db", "/proc/nope/x.db", "--log-level",
                                "info"};
  for (auto& a : sys_.endpoint_args()) argv.push_back(a);
  const auto sink = sys_.run(argv, 30s);
  EXPECT_NE(sink.status.shell_code(), 0) << sink.describe();
  EXPECT_FALSE(sink.timed_out) << sink.describe();
  expect_one_line(sink);
}

TEST_F(EndToEnd, MalformedJsonLinesLeaveNoRows) {
  const auto file = sys_.write_file("input.jsonl",
                                    "{\"key\": \"a\", \"payload\": \"first\"}\n"
                                    "{\"key\": \"b\", \"payload\": {\"nested\": true}}\n"
                                    "{\"key\": \"c\", \"payload\": \n"
                                    "{\"key\": \"d\", \"payload\": \"last\"}\n");
  const auto r = sys_.run(
      {bin("topicflow"), "run", "--db", sys_.db(), "--job", "broken", "--progress", "none", file},
      60s);
  EXPECT_NE(r.status.shell_code(), 0) << r.describe();
  EXPECT_FALSE(r.timed_out) << r.describe();
  EXPECT_NE(r.err.find("input.jsonl:3"), std::string::npos)
      << "the error should name the line; " << r.describe();
  expect_one_line(r);
  EXPECT_FALSE(std::filesystem::exists(sys_.db()))
      << "the file is checked before anything starts: no database; " << r.describe();
}

TEST_F(EndToEnd, EndpointInUseIsAOneLineError) {
  zmq::context_t ctx(1);
  zmq::socket_t holder(ctx, zmq::socket_type::pull);
  holder.set(zmq::sockopt::linger, 0);
  holder.bind("tcp://127.0.0.1:*");
  const auto used = holder.get(zmq::sockopt::last_endpoint);

  const auto broker =
      sys_.run({bin("topicflow-broker"), "--frontend", used, "--backend", "tcp://127.0.0.1:*",
                "--sink", sys_.endpoint("sink"), "--log-level", "info"},
               30s);
  EXPECT_EQ(broker.status.shell_code(), 1) << broker.describe();
  expect_one_line(broker);
  EXPECT_NE(broker.err.find("in use"), std::string::npos) << broker.describe();

  const auto sink = sys_.run(
      {bin("topicflow-sink"), "--db", sys_.db(), "--sink", used, "--events", "tcp://127.0.0.1:*",
       "--frontend", sys_.endpoint("frontend"), "--log-level", "info"},
      30s);
  EXPECT_NE(sink.status.shell_code(), 0) << sink.describe();
  expect_one_line(sink);
  EXPECT_NE(sink.err.find("in use"), std::string::npos) << sink.describe();
}

// ZeroMQ would unlink a live ipc:// socket file and bind over it: the second sink must refuse
// instead of stealing the first one's traffic.
TEST_F(EndToEnd, IpcEndpointInUseIsAOneLineError) {
  sys_.start_all(0);
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!std::filesystem::exists(sys_.dir() / "sink") &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(std::filesystem::exists(sys_.dir() / "sink")) << sys_.log("sink");

  const auto second = sys_.run({bin("topicflow-sink"), "--db", (sys_.dir() / "second.db").string(),
                                "--sink", sys_.endpoint("sink"), "--events", "tcp://127.0.0.1:*",
                                "--frontend", sys_.endpoint("frontend"), "--log-level", "info"},
                               30s);
  EXPECT_NE(second.status.shell_code(), 0) << second.describe();
  expect_one_line(second);
  EXPECT_NE(second.err.find("in use"), std::string::npos) << second.describe();
  EXPECT_TRUE(sys_.role("sink").running()) << "the first sink keeps its endpoint";
  EXPECT_TRUE(std::filesystem::exists(sys_.dir() / "sink")) << "and its socket file";
}

TEST_F(EndToEnd, RunRestartsAKilledWorker) {
  const auto file = sys_.write_file("topics.txt", numbered_topics(60));
  SpawnOptions options;
  options.stdout_path = (sys_.dir() / "run.out").string();
  options.stderr_path = (sys_.dir() / "run.err").string();
  options.die_with_parent = true;
  // ~2.4 s of work (60 topics x 60-100 ms over 2 workers), so the kill lands mid-run.
  ChildProcess run({bin("topicflow"), "run", "--db", sys_.db(), "--handler", "sleep:60-100",
                    "--workers", "2", "--lease-ms", "1000", "--dispatch-timeout-ms", "2000",
                    "--progress", "none", "--log-level", "warn", file},
                   options);
  // Find a worker among run's children and SIGKILL it mid-run.
  pid_t victim = -1;
  for (int i = 0; i < 600 && victim < 0; ++i) {  // up to 30 s on a loaded machine
    std::this_thread::sleep_for(50ms);
    victim = find_child(run.pid(), "topicflow-worke");
  }
  ASSERT_GT(victim, 0) << "no worker of run found";
  // Mid-run: work under way. (A killed child is restarted whenever it dies; only one that exits
  // by itself at startup stops the run.)
  ASSERT_TRUE(sys_.wait_for_counts([](const StatusCounts& c) { return c["completed"] > 0; }, 30s));
  ::kill(victim, SIGKILL);
  // Tasks the dead worker held come back within a lease (started) or a dispatch timeout (queued).
  const auto status = run.wait_for(60s);
  ASSERT_TRUE(status.has_value()) << "run did not finish within 60 s";
  const auto err = read_text(sys_.dir() / "run.err");
  EXPECT_EQ(status->shell_code(), 0) << err << read_text(sys_.dir() / "run.out");
  EXPECT_NE(err.find("(pid " + std::to_string(victim) + ") exited with signal 9"),
            std::string::npos)
      << err;
  DbReader db(sys_.db());
  EXPECT_EQ(db.scalar("SELECT count(*) FROM topics WHERE status = 'completed'"), 60) << err;
}

// A handler's command that leaves processes behind: they come to the worker (a child
// subreaper), not to a PID 1 that may never reap them, and the worker reaps them when they die.
TEST_F(EndToEnd, WorkerReapsWhatItsHandlersLeaveBehind) {
  sys_.start_all(1, {},
                 {"--handler", "exec:setsid sleep 60 </dev/null >/dev/null 2>&1 & p=$!; " +
                                   wait_until_out_of_group("p") + "echo $p"});
  sys_.start_producer(sys_.write_file("topics.txt", "one\n"));
  ASSERT_TRUE(sys_.wait_for_counts([](const StatusCounts& c) { return c.all_completed(1); }, 30s))
      << sys_.counts().describe();
  const auto results = DbReader(sys_.db()).results("default");
  ASSERT_EQ(results.size(), 1U);
  const pid_t orphan = std::stoi(results.begin()->second);
  const auto stat = proc_stat(orphan);
  ASSERT_TRUE(stat.has_value()) << "the orphan (pid " << orphan << ") runs on";
  EXPECT_EQ(stat->parent, sys_.role("worker1").pid()) << "its parent is the worker, not PID 1";
  ::kill(orphan, SIGKILL);
  EXPECT_TRUE(reaped_within(orphan, 10s))
      << "the worker reaps it: " << (proc_stat(orphan) ? "still there" : "gone");
  sys_.stop_all();
}

// The issue's lagging metrics: scraped right after a job, the counters said 0 while the same
// scrape's histograms had the batches. The sink publishes its metrics snapshot after every
// commit, before the progress events of that commit: a client that saw the job end (producer
// --wait exits) and scrapes at once sees its totals, and one scrape is one moment.
TEST_F(EndToEnd, MetricsRightAfterAJobShowItsTotals) {
  const int n = 500;
  const int port = free_port();
  sys_.start_all(2, {"--http-port", std::to_string(port)},
                 {"--handler", "sleep:0-2", "--concurrency", "4"});
  auto& producer =
      sys_.start_producer(sys_.write_file("topics.txt", numbered_topics(n)), {"--wait"});
  const auto exit = producer.wait_for(60s);
  ASSERT_TRUE(exit && exit->success()) << sys_.log("producer1");
  const auto text = http_get(port, "/metrics").body;  // at once
  EXPECT_EQ(metric(text, R"(topicflow_topics\{job="default",status="completed"\})"), n) << text;
  const auto updates = metric(text, "topicflow_sink_updates_committed_total");
  const auto batches = metric(text, "topicflow_sink_batches_committed_total");
  EXPECT_GE(updates, 2 * n) << "a row's INSERT and its result at least:\n" << text;
  EXPECT_EQ(updates, metric(text, "topicflow_sink_batch_size_sum")) << text;
  EXPECT_EQ(batches, metric(text, "topicflow_sink_batch_size_count")) << text;
  EXPECT_EQ(metric(text, "topicflow_sink_workers"), 2) << text;
  sys_.stop_all();
  DbReader db(sys_.db());
  EXPECT_TRUE(all_completed(db, "default", n));
}

TEST_F(EndToEnd, RunStopsEverythingOnSigint) {
  const auto file = sys_.write_file("topics.txt", numbered_topics(200));
  SpawnOptions options;
  options.stdout_path = (sys_.dir() / "run.out").string();
  options.stderr_path = (sys_.dir() / "run.err").string();
  options.die_with_parent = true;
  ChildProcess run({bin("topicflow"), "run", "--db", sys_.db(), "--handler", "sleep:100-200",
                    "--workers", "2", "--progress", "none", file},
                   options);
  // Wait until work is under way (a topic completed), then interrupt. counts() reads nothing
  // until the sink has created the table: the file exists a moment before its schema does.
  sys_.wait_for_counts([](const StatusCounts& c) { return c["completed"] > 0; }, 10s);
  const auto start = std::chrono::steady_clock::now();
  run.terminate(SIGINT);
  const auto status = run.wait_for(30s);
  ASSERT_TRUE(status.has_value()) << "run ignored SIGINT";
  EXPECT_EQ(status->shell_code(), 130) << read_text(sys_.dir() / "run.err");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 15s);
  DbReader db(sys_.db());
  EXPECT_EQ(db.scalar("SELECT count(*) FROM topics"), 200)
      << "every topic was registered before the interrupt";
  EXPECT_GT(db.scalar("SELECT count(*) FROM topics WHERE status = 'completed'"), 0);
  EXPECT_LT(db.scalar("SELECT count(*) FROM topics WHERE status = 'completed'"), 200)
      << "interrupted before the end";
}

}  // namespace
}  // namespace topicflow::testing
