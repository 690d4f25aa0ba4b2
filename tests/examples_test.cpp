// The example handlers (examples/handlers/) through the real pipeline, as the README's second
// step runs them, and `topicflow status --watch` in its plain (non-terminal) mode. Label e2e.
// Every test asserts the database's final state, read with SQLite after the run has stopped.
#include "support/python.hpp"
#include "support/system.hpp"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <csignal>
#include <set>
#include <sstream>
#include <string>
#include <thread>

namespace topicflow::testing {
namespace {

using namespace std::chrono_literals;

const std::string kExamples = TOPICFLOW_EXAMPLES_DIR;
const std::string kTopics = kExamples + "/topics.txt";
const std::string kSummarise = kExamples + "/handlers/summarise.py";
const std::string kWordcount = kExamples + "/handlers/wordcount.sh";

std::string quoted(const std::string& text) {  // for /bin/sh
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// "PATH=DIR:$PATH " when the tests' Python (support/python.hpp) is not just `python3`, so that the
// README's `python3` is that interpreter.
std::string python_first_in_path() {
  const auto python = python3();
  const auto slash = python.rfind('/');
  if (slash == std::string::npos) return "";
  return "PATH=" + quoted(python.substr(0, slash)) + ":\"$PATH\" ";
}

std::string lower(std::string text) {
  for (auto& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::vector<std::string> whitespace_words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

class Examples : public ::testing::Test {
 protected:
  System sys_;

  // `topicflow run ARGS...`, quietly, on this test's database.
  CommandResult run(std::vector<std::string> args,
                    const std::vector<std::pair<std::string, std::string>>& env = {}) {
    std::vector<std::string> argv{bin("topicflow"), "run", "--db", sys_.db(), "--progress", "none"};
    argv.insert(argv.end(), args.begin(), args.end());
    return sys_.run(argv, 240s, env);
  }

  // `topicflow status --watch ...` started now, stdout and stderr into <dir>/watch.out.
  ChildProcess start_watch(const std::vector<std::string>& args) {
    std::vector<std::string> argv{bin("topicflow"), "status", "--watch", "--db", sys_.db()};
    argv.insert(argv.end(), args.begin(), args.end());
    SpawnOptions options;
    options.stdout_path = watch_out();
    options.stderr_path = watch_out();
    options.stdin_null = true;
    options.die_with_parent = true;
    return ChildProcess(argv, options);
  }
  [[nodiscard]] std::string watch_out() const { return (sys_.dir() / "watch.out").string(); }
};

TEST_F(Examples, PythonHandlerSummarisesEveryExampleTopic) {
  // Exactly the README's command, from the source tree (the handler path is relative).
  const std::string command = "cd " + quoted(std::string(TOPICFLOW_EXAMPLES_DIR) + "/..") + " && " +
                              python_first_in_path() + "exec " + quoted(bin("topicflow")) +
                              " run --db " + quoted(sys_.db()) +
                              " --progress none --workers 2 --concurrency 10"
                              " --handler 'exec:python3 examples/handlers/summarise.py'"
                              " examples/topics.txt";
  const auto r = sys_.run({"/bin/sh", "-c", command}, 240s);
  ASSERT_EQ(r.status.shell_code(), 0) << r.describe();
  EXPECT_NE(r.out.find("288 completed"), std::string::npos) << "summary: " << r.out;

  DbReader db(sys_.db());
  EXPECT_TRUE(all_completed(db, "default", 288)) << r.describe();
  const auto results = db.results("default");
  ASSERT_EQ(results.size(), 288U);
  for (const auto& [key, result] : results) {
    nlohmann::json doc;
    ASSERT_NO_THROW(doc = nlohmann::json::parse(result))
        << key << ": result is not JSON: " << result;
    EXPECT_EQ(doc.at("key"), key) << result;
    EXPECT_EQ(doc.at("title"), key) << "a title normalises to itself: " << result;
    EXPECT_EQ(doc.at("words").get<int>(), static_cast<int>(whitespace_words(key).size())) << result;
    ASSERT_TRUE(doc.at("keywords").is_array()) << result;
    EXPECT_GE(doc.at("keywords").size(), 1U) << result;
    EXPECT_LE(doc.at("keywords").size(), 3U) << result;
    for (const auto& k : doc.at("keywords")) {
      EXPECT_NE(lower(key).find(k.get<std::string>().substr(0, 3)), std::string::npos)
          << "keyword " << k << " is not from the title: " << result;
    }
  }
  EXPECT_EQ(db.scalar("SELECT count(*) FROM topics WHERE error IS NOT NULL"), 0);
}

TEST_F(Examples, ShellHandlerCountsTheWordsOfEveryTopic) {
  const auto r = run({"--workers", "2", "--concurrency", "4", "--handler",
                      "exec:sh " + quoted(kWordcount), kTopics});
  ASSERT_EQ(r.status.shell_code(), 0) << r.describe();
  DbReader db(sys_.db());
  const auto results = db.results("default");
  ASSERT_EQ(results.size(), 288U) << r.describe();
  for (const auto& [key, result] : results) {
    nlohmann::json doc;
    ASSERT_NO_THROW(doc = nlohmann::json::parse(result))
        << key << ": result is not JSON: " << result;
    EXPECT_EQ(doc.at("key"), key) << result;
    EXPECT_EQ(doc.at("lines").get<int>(), 1) << result;
    EXPECT_EQ(doc.at("words").get<int>(), static_cast<int>(whitespace_words(key).size())) << result;
    EXPECT_EQ(doc.at("bytes").get<std::size_t>(), key.size())
        << "the payload is the line: " << result;
    EXPECT_NE(lower(key).find(doc.at("longest_word").get<std::string>()), std::string::npos)
        << result;
  }
}

// Bad input fails for good (exit 1, no retry) and its stderr is the row's error, which
// `topicflow status` shows; good input beside it completes.
TEST_F(Examples, BadInputFailsWithItsStderrInTheErrorColumnAndInStatus) {
  const auto file = sys_.write_file(
      "mixed.jsonl",
      R"({"key":"empty","payload":""})"
      "\n"
      R"({"key":"blank","payload":"   "})"
      "\n"
      R"({"key":"dots","payload":"... !!! ..."})"
      "\n"
      R"({"key":"article","payload":{"title":"Queues and backpressure","text":"Why queues need backpressure"}})"
      "\n"
      R"({"key":"plain","payload":"ZeroMQ pipelines in practice"})"
      "\n");
  const auto r = run({"--workers", "1", "--concurrency", "4", "--max-attempts", "3", "--handler",
                      "exec:" + python3() + " " + quoted(kSummarise), file});
  EXPECT_EQ(r.status.shell_code(), 1) << "some topics failed: run exits 1; " << r.describe();

  DbReader db(sys_.db());
  const auto rows = db.rows("default");
  ASSERT_EQ(rows.size(), 5U) << r.describe();
  const std::map<std::string, std::string> expected_errors{
      {"empty", "exit status 1: summarise: empty payload: nothing to summarise (key 'empty')"},
      {"blank", "exit status 1: summarise: empty payload: nothing to summarise (key 'blank')"},
      {"dots", "exit status 1: summarise: payload has no words to summarise (key 'dots')"}};
  for (const auto& [key, error] : expected_errors) {
    const auto& row = rows.at(key);
    EXPECT_EQ(row.status, "failed") << key;
    EXPECT_EQ(row.attempts, 1) << key << ": a permanent failure is not retried";
    EXPECT_EQ(row.error.value_or("(null)"), error) << key;
  }
  for (const char* key : {"article", "plain"}) {
    EXPECT_EQ(rows.at(key).status, "completed") << key;
    EXPECT_FALSE(rows.at(key).error.has_value()) << key;
  }
  const auto article = nlohmann::json::parse(db.results("default").at("article"));
  EXPECT_EQ(article.at("keywords").at(0), "backpressure") << article.dump();

  const auto status = sys_.run({bin("topicflow"), "status", "--db", sys_.db()});
  ASSERT_EQ(status.status.shell_code(), 0) << status.describe();
  EXPECT_NE(status.out.find("most recent errors:"), std::string::npos) << status.out;
  for (const auto& [key, error] : expected_errors) {
    EXPECT_NE(status.out.find("default/" + key + "  failed after 1 attempt: " + error),
              std::string::npos)
        << "status must show " << key << "'s error:\n"
        << status.out;
  }
  const auto json = sys_.run({bin("topicflow"), "status", "--db", sys_.db(), "--json"});
  const auto doc = nlohmann::json::parse(json.out);
  EXPECT_EQ(doc.at("totals").at("failed"), 3) << json.out;
  std::set<std::string> errors;
  for (const auto& e : doc.at("errors")) errors.insert(e.at("error").get<std::string>());
  for (const auto& [key, error] : expected_errors) EXPECT_TRUE(errors.contains(error)) << json.out;

  // A finished job with failures: --watch --until-done prints once, lists the errors, exits 1.
  auto watch = start_watch({"--until-done", "--interval-ms", "100"});
  const auto exit = watch.wait_for(20s);
  ASSERT_TRUE(exit.has_value()) << "status --watch --until-done did not exit on a finished job";
  EXPECT_EQ(exit->shell_code(), 1) << "some topics failed: " << read_text(watch_out());
  const auto out = read_text(watch_out());
  EXPECT_NE(out.find("pending 0 running 0 completed 2 failed 3 total 5"), std::string::npos) << out;
  for (const auto& [key, error] : expected_errors) {
    EXPECT_NE(out.find("default/" + key + "  failed after 1 attempt: " + error), std::string::npos)
        << out;
  }
}

// Exit 75 is a retryable failure: with the simulated transient failure on the first attempt,
// every topic completes on its second.
TEST_F(Examples, TransientFailuresAreRetried) {
  std::string topics;
  for (int i = 1; i <= 30; ++i) topics += "Retry lesson number " + std::to_string(i) + "\n";
  const auto file = sys_.write_file("retry.txt", topics);
  for (const auto& handler :
       {"exec:" + python3() + " " + quoted(kSummarise), "exec:sh " + quoted(kWordcount)}) {
    const auto job = handler.find("python") != std::string::npos ? "python" : "shell";
    const auto r =
        run({"--job", job, "--workers", "2", "--concurrency", "5", "--retry-base-ms", "10",
             "--retry-max-ms", "50", "--max-attempts", "3", "--handler", handler, file},
            {{"SUMMARISE_TEMPFAIL_ATTEMPTS", "1"}, {"WORDCOUNT_TEMPFAIL_ATTEMPTS", "1"}});
    ASSERT_EQ(r.status.shell_code(), 0) << handler << ": " << r.describe();
    DbReader db(sys_.db());
    EXPECT_EQ(db.scalar("SELECT count(*) FROM topics WHERE job = '" + std::string(job) +
                        "' AND status = 'completed' AND attempts = 2 AND error IS NULL"),
              30)
        << handler << ": every topic fails once (exit 75), then completes";
  }
}

// Plain mode (stdout is a file): started before the database exists, it waits for it, prints a
// line per refresh while `topicflow run` works, and exits 0 by itself once all completed.
TEST_F(Examples, StatusWatchFollowsARunUntilDone) {
  auto watch = start_watch({"--until-done", "--interval-ms", "100"});
  std::this_thread::sleep_for(300ms);
  const auto r = run({"--workers", "2", "--concurrency", "4", "--handler", "sleep:5-15", kTopics});
  ASSERT_EQ(r.status.shell_code(), 0) << r.describe();
  const auto exit = watch.wait_for(20s);
  const auto out = read_text(watch_out());
  ASSERT_TRUE(exit.has_value()) << "status --watch --until-done did not exit after the run:\n"
                                << out;
  EXPECT_EQ(exit->shell_code(), 0) << out;
  EXPECT_EQ(out.find('\x1b'), std::string::npos) << "no terminal escapes when stdout is a file:\n"
                                                 << out;
  const auto lines = lines_of(out);
  ASSERT_GE(lines.size(), 3U) << out;
  EXPECT_NE(lines.front().find("waiting for the database"), std::string::npos) << out;
  EXPECT_NE(lines.back().find("pending 0 running 0 completed 288 failed 0 total 288"),
            std::string::npos)
      << out;
  EXPECT_NE(lines.back().find("| done"), std::string::npos) << out;
  int refreshes = 0;
  bool saw_rate = false;
  for (const auto& line : lines) {
    if (line.find(" total ") == std::string::npos) continue;
    ++refreshes;
    EXPECT_NE(line.find("/s (completed "), std::string::npos) << line;
    EXPECT_NE(line.find("| ETA "), std::string::npos) << line;
    if (line.find("| 0.0/s") == std::string::npos) saw_rate = true;
  }
  EXPECT_GE(refreshes, 1) << out;
  if (refreshes >= 3) {
    EXPECT_TRUE(saw_rate) << "a rate was measured between refreshes:\n" << out;
  }
}

TEST_F(Examples, StatusWatchExitsZeroOnSigint) {
  const auto r = run({"--workers", "1", "--handler", "noop", kTopics});
  ASSERT_EQ(r.status.shell_code(), 0) << r.describe();
  auto watch = start_watch({"--interval-ms", "100"});  // no --until-done: refreshes until told
  // Three refreshes (0.3 s at full speed; a sanitizer build on loaded cores takes longer).
  for (int i = 0; i < 400 && lines_of(read_text(watch_out())).size() < 3; ++i)
    std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(watch.poll_exit().has_value()) << "exited on its own:\n" << read_text(watch_out());
  const auto status = watch.stop(SIGINT, 5s);
  const auto out = read_text(watch_out());
  EXPECT_EQ(status.shell_code(), 0) << out;
  EXPECT_GE(lines_of(out).size(), 3U) << "one line per refresh:\n" << out;
  EXPECT_NE(out.find("completed 288"), std::string::npos) << out;
}

TEST_F(Examples, StatusWatchFlagsNeedWatchAndExcludeJson) {
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"--until-done"},
                                             {"--interval-ms", "100"},
                                             {"--watch", "--json"},
                                             {"--watch", "--interval-ms", "0"}}) {
    std::vector<std::string> argv{bin("topicflow"), "status", "--db", sys_.db()};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto r = sys_.run(argv, 30s);
    EXPECT_EQ(r.status.shell_code(), 2) << args.front() << ": " << r.describe();
    EXPECT_EQ(lines_of(r.err).size(), 1U) << r.describe();
  }
}

}  // namespace
}  // namespace topicflow::testing
