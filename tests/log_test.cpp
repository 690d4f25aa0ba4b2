// Unit tests of logging (common/src/log.cpp): init_logging's level handling and RateLimitedLog,
// which must count every event but write at most one line per interval.

#include <topicflow/log.hpp>

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

using topicflow::RateLimitedLog;

namespace {

// Routes the default logger into a string for the lifetime of one test.
class CapturedLog {
 public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    sink->set_pattern("%l: %v");
    auto logger = std::make_shared<spdlog::logger>("captured", sink);
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;

  [[nodiscard]] std::string text() const { return out_.str(); }
  [[nodiscard]] std::size_t lines() const {
    const auto s = out_.str();
    return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n'));
  }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

}  // namespace

TEST(RateLimitedLog, CountsEveryEventButLogsOncePerInterval) {
  CapturedLog log;
  RateLimitedLog limited(60'000);
  for (int i = 0; i < 1000; ++i) limited.warn("bad frame");
  EXPECT_EQ(limited.total(), 1000U) << "every event is counted";
  EXPECT_EQ(log.lines(), 1U) << "one line for a burst within the interval; log:\n" << log.text();
  EXPECT_NE(log.text().find("warning: bad frame"), std::string::npos) << "log:\n" << log.text();
}

TEST(RateLimitedLog, LogsAgainAfterTheIntervalWithTheSuppressedCount) {
  CapturedLog log;
  RateLimitedLog limited(200);
  for (int i = 0; i < 5; ++i) limited.warn("garbage on --sink");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  limited.warn("garbage on --sink");
  EXPECT_EQ(limited.total(), 6U);
  EXPECT_EQ(log.lines(), 2U) << "a second line once the interval passed; log:\n" << log.text();
  EXPECT_NE(log.text().find("4 similar suppressed, 6 in total"), std::string::npos)
      << "the second line reports what was swallowed; log:\n"
      << log.text();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  limited.warn("garbage on --sink");
  EXPECT_EQ(log.lines(), 3U) << "log:\n" << log.text();
  const auto text = log.text();
  const auto last_line = text.substr(text.rfind('\n', text.size() - 2) + 1);
  EXPECT_EQ(last_line.find("suppressed"), std::string::npos)
      << "nothing was suppressed since the previous line: " << last_line;
}

TEST(RateLimitedLog, ZeroIntervalLogsEverything) {
  CapturedLog log;
  RateLimitedLog limited(0);
  for (int i = 0; i < 10; ++i) limited.warn("each one");
  EXPECT_EQ(limited.total(), 10U);
  EXPECT_EQ(log.lines(), 10U) << "log:\n" << log.text();
}

TEST(RateLimitedLog, TheFirstEventIsAlwaysLogged) {
  // Even on a machine whose steady clock started moments ago.
  CapturedLog log;
  RateLimitedLog limited(1'000'000);
  limited.warn("first");
  EXPECT_EQ(log.lines(), 1U) << "log:\n" << log.text();
}

TEST(InitLogging, RejectsAnUnknownLevel) {
  EXPECT_THROW(topicflow::init_logging("log-test-bad", "loud"), std::invalid_argument);
  try {
    topicflow::init_logging("log-test-bad", "verbose");
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("verbose"), std::string::npos) << e.what();
  }
}

TEST(InitLogging, SetsTheDefaultLoggerAndLevel) {
  const auto previous = spdlog::default_logger();
  topicflow::init_logging("log-test-role", "warn");
  EXPECT_EQ(spdlog::default_logger()->name(), "log-test-role");
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::warn);
  topicflow::init_logging("log-test-off", "off");
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::off) << "'off' is a valid level";
  spdlog::set_default_logger(previous);
}

TEST(InitLogging, CanBeCalledAgainForTheSameRole) {
  // A test, or a binary that re-reads its configuration, may initialise logging twice.
  const auto previous = spdlog::default_logger();
  ASSERT_NO_THROW(topicflow::init_logging("log-test-twice", "info"));
  ASSERT_NO_THROW(topicflow::init_logging("log-test-twice", "debug"))
      << "second call with the same role";
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::debug);
  spdlog::set_default_logger(previous);
}
