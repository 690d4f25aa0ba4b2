// exec-persistent: through the real pipeline (`topicflow run`), with the example co-process
// examples/handlers/summarise_server.py. Label e2e; asserts the database's final state.
#include "support/python.hpp"
#include "support/system.hpp"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace topicflow::testing {
namespace {

using namespace std::chrono_literals;

const std::string kExamples = TOPICFLOW_EXAMPLES_DIR;
const std::string kServer = kExamples + "/handlers/summarise_server.py";
const std::string kSummarise = kExamples + "/handlers/summarise.py";

// The first `n` lines of examples/topics.txt, as a file of this test.
std::string some_topics(System& sys, std::size_t n) {
  const auto lines = lines_of(read_text(kExamples + "/topics.txt"));
  std::string text;
  for (std::size_t i = 0; i < n && i < lines.size(); ++i) text += lines[i] + "\n";
  return sys.write_file("topics.txt", text);
}

CommandResult run(System& sys, const std::string& db, std::vector<std::string> args,
                  const std::vector<std::pair<std::string, std::string>>& env = {}) {
  std::vector<std::string> argv{bin("topicflow"), "run", "--db", db, "--progress", "none"};
  argv.insert(argv.end(), args.begin(), args.end());
  return sys.run(argv, 240s, env);
}

TEST(PersistentExecE2E, SameResultsAsPerTaskExec) {
  System sys;
  const auto topics = some_topics(sys, 60);
  const auto per_task_db = (sys.dir() / "per-task.db").string();
  const auto r1 = run(sys, per_task_db,
                      {"--workers", "1", "--concurrency", "4", "--handler",
                       "exec:" + python3() + " " + kSummarise, topics});
  ASSERT_EQ(r1.status.shell_code(), 0) << r1.describe();
  const auto r2 = run(sys, sys.db(),
                      {"--workers", "2", "--concurrency", "4", "--handler",
                       "exec-persistent:" + python3() + " " + kServer, topics});
  ASSERT_EQ(r2.status.shell_code(), 0) << r2.describe();

  const auto expected = DbReader(per_task_db).results("default");
  DbReader db(sys.db());
  const auto got = db.results("default");
  ASSERT_EQ(expected.size(), 60U);
  ASSERT_EQ(got.size(), 60U) << r2.describe();
  for (const auto& [key, result] : expected) {
    ASSERT_TRUE(got.contains(key)) << key;
    // summarise.py prints a newline after its JSON; the co-process's result is the JSON alone.
    EXPECT_EQ(got.at(key) + "\n", result) << key;
    EXPECT_EQ(nlohmann::json::parse(got.at(key)).at("key"), key);
  }
  EXPECT_EQ(db.scalar("SELECT count(*) FROM topics WHERE attempts = 1 AND error IS NULL"), 60);
}

TEST(PersistentExecE2E, EveryCoProcessCrashIsRetriedOnAFreshOne) {
  // Attempt 1 of every topic kills its co-process (SIGKILL, as the OOM killer would); attempt 2
  // runs on a new one and completes.
  System sys;
  const auto topics = some_topics(sys, 30);
  const auto r =
      run(sys, sys.db(),
          {"--workers", "1", "--concurrency", "3", "--retry-base-ms", "20", "--retry-max-ms", "100",
           "--handler", "exec-persistent:" + python3() + " " + kServer, topics},
          {{"SUMMARISE_CRASH_ATTEMPTS", "1"}});
  ASSERT_EQ(r.status.shell_code(), 0) << r.describe();
  DbReader db(sys.db());
  EXPECT_TRUE(all_completed(db, "default", 30)) << r.describe();
  EXPECT_EQ(db.scalar("SELECT count(*) FROM topics WHERE attempts = 2"), 30)
      << "each topic: one crashed attempt, one completed";
  for (const auto& [key, result] : db.results("default")) {
    EXPECT_EQ(nlohmann::json::parse(result).at("key"), key) << result;
  }
}

TEST(PersistentExecE2E, AnswersRetryAndFailedReachTheDatabase) {
  System sys;
  const auto file =
      sys.write_file("mixed.jsonl", R"({"key":"empty","payload":""})"
                                    "\n"
                                    R"({"key":"dots","payload":"... !!! ..."})"
                                    "\n"
                                    R"({"key":"plain","payload":"ZeroMQ pipelines in practice"})"
                                    "\n");
  // Attempts 1 and 2 answer "retry"; the third answers for real.
  const auto r = run(
      sys, sys.db(),
      {"--workers", "1", "--concurrency", "2", "--retry-base-ms", "20", "--retry-max-ms", "100",
       "--max-attempts", "5", "--handler", "exec-persistent:" + python3() + " " + kServer, file},
      {{"SUMMARISE_TEMPFAIL_ATTEMPTS", "2"}});
  EXPECT_EQ(r.status.shell_code(), 1) << "two topics fail: " << r.describe();
  DbReader db(sys.db());
  const auto rows = db.rows("default");
  ASSERT_EQ(rows.size(), 3U) << r.describe();
  EXPECT_EQ(rows.at("plain").status, "completed");
  EXPECT_EQ(rows.at("plain").attempts, 3);
  EXPECT_EQ(rows.at("empty").status, "failed");
  EXPECT_EQ(rows.at("empty").attempts, 3) << "two retries, then a permanent failure";
  EXPECT_EQ(rows.at("empty").error.value_or(""),
            "summarise: empty payload: nothing to summarise (key 'empty')");
  EXPECT_EQ(rows.at("dots").error.value_or(""),
            "summarise: payload has no words to summarise (key 'dots')");
}

}  // namespace
}  // namespace topicflow::testing
