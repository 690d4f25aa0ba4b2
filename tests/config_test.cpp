// Unit tests of the shared configuration helpers (common/src/config.cpp): the flag/env naming
// rule, exit codes of parse_command_line, flag-over-env precedence, endpoint validation.

#include <topicflow/config.hpp>

#include <gtest/gtest.h>

#include <cstdlib>
#include <initializer_list>
#include <string>
#include <vector>

using topicflow::add_bool_flag;
using topicflow::add_endpoint_options;
using topicflow::add_flag_option;
using topicflow::add_log_level_option;
using topicflow::env_name;
using topicflow::parse_command_line;
using topicflow::validate_endpoint;

namespace {

// argv for CLI11: owns the strings, hands out char**.
class Argv {
 public:
  Argv(std::initializer_list<std::string> args) : args_(args) {
    args_.insert(args_.begin(), "topicflow-test");
    for (auto& a : args_) pointers_.push_back(a.data());
    pointers_.push_back(nullptr);
  }
  [[nodiscard]] int argc() const { return static_cast<int>(args_.size()); }
  [[nodiscard]] char** argv() { return pointers_.data(); }

 private:
  std::vector<std::string> args_;
  std::vector<char*> pointers_;
};

// Sets an environment variable for the scope of one test.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const std::string& value) : name_(std::move(name)) {
    ::setenv(name_.c_str(), value.c_str(), 1);
  }
  ~ScopedEnv() { ::unsetenv(name_.c_str()); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
};

struct Options {
  int x = 1;
  std::string name = "default";
  bool verbose = false;
};

void add_options(CLI::App& app, Options& o) {
  add_flag_option(app, "--x", o.x, "an integer");
  add_flag_option(app, "--name", o.name, "a string");
  add_bool_flag(app, "--verbose", o.verbose, "a boolean flag");
}

// Runs parse_command_line and captures what it prints.
struct Parsed {
  std::optional<int> code;
  std::string out;
  std::string err;
};

Parsed parse(CLI::App& app, Argv args) {
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  Parsed p;
  p.code = parse_command_line(app, args.argc(), args.argv());
  p.out = testing::internal::GetCapturedStdout();
  p.err = testing::internal::GetCapturedStderr();
  return p;
}

std::string describe(const Parsed& p) {
  return "code=" + (p.code ? std::to_string(*p.code) : std::string("none")) + " stdout=[" + p.out +
         "] stderr=[" + p.err + "]";
}

}  // namespace

TEST(ConfigEnvName, FollowsTheNamingRule) {
  EXPECT_EQ(env_name("--batch-max"), "TOPICFLOW_BATCH_MAX");
  EXPECT_EQ(env_name("--db"), "TOPICFLOW_DB");
  EXPECT_EQ(env_name("--batch-delay-ms"), "TOPICFLOW_BATCH_DELAY_MS");
  EXPECT_EQ(env_name("--log-level"), "TOPICFLOW_LOG_LEVEL");
  EXPECT_EQ(env_name("-x"), "TOPICFLOW_X") << "short flag";
  EXPECT_EQ(env_name("frontend"), "TOPICFLOW_FRONTEND") << "no dashes";
  EXPECT_EQ(env_name("--Mixed-Case9"), "TOPICFLOW_MIXED_CASE9");
}

TEST(ConfigParse, GoodArgumentsContinue) {
  CLI::App app("test");
  Options o;
  add_options(app, o);
  const auto p = parse(app, Argv{"--x", "42", "--name", "abc", "--verbose"});
  EXPECT_FALSE(p.code.has_value()) << describe(p);
  EXPECT_EQ(o.x, 42);
  EXPECT_EQ(o.name, "abc");
  EXPECT_TRUE(o.verbose);
}

TEST(ConfigParse, DefaultsStayWhenNothingIsGiven) {
  CLI::App app("test");
  Options o;
  add_options(app, o);
  const auto p = parse(app, Argv{});
  EXPECT_FALSE(p.code.has_value()) << describe(p);
  EXPECT_EQ(o.x, 1);
  EXPECT_EQ(o.name, "default");
  EXPECT_FALSE(o.verbose);
}

TEST(ConfigParse, UnknownFlagExitsTwoWithOneLine) {
  CLI::App app("test", "topicflow-test");
  Options o;
  add_options(app, o);
  const auto p = parse(app, Argv{"--no-such-flag"});
  ASSERT_TRUE(p.code.has_value()) << describe(p);
  EXPECT_EQ(*p.code, 2) << describe(p);
  EXPECT_NE(p.err.find("no-such-flag"), std::string::npos) << describe(p);
  ASSERT_FALSE(p.err.empty()) << describe(p);
  EXPECT_EQ(p.err.find('\n'), p.err.size() - 1) << "exactly one line: " << describe(p);
}

TEST(ConfigParse, BadValueExitsTwo) {
  CLI::App app("test");
  Options o;
  add_options(app, o);
  const auto p = parse(app, Argv{"--x", "not-a-number"});
  ASSERT_TRUE(p.code.has_value()) << describe(p);
  EXPECT_EQ(*p.code, 2) << describe(p);
  EXPECT_NE(p.err.find("--x"), std::string::npos) << "the reason names the flag: " << describe(p);
  EXPECT_EQ(p.err.find('\n'), p.err.size() - 1) << "exactly one line: " << describe(p);
}

TEST(ConfigParse, MissingValueExitsTwo) {
  CLI::App app("test");
  Options o;
  add_options(app, o);
  const auto p = parse(app, Argv{"--x"});
  ASSERT_TRUE(p.code.has_value()) << describe(p);
  EXPECT_EQ(*p.code, 2) << describe(p);
}

TEST(ConfigParse, HelpExitsZeroAndListsTheEnvVar) {
  CLI::App app("test");
  Options o;
  add_options(app, o);
  const auto p = parse(app, Argv{"--help"});
  ASSERT_TRUE(p.code.has_value()) << describe(p);
  EXPECT_EQ(*p.code, 0) << describe(p);
  EXPECT_NE(p.out.find("--x"), std::string::npos) << "help lists the flag: " << describe(p);
  EXPECT_NE(p.out.find("TOPICFLOW_X"), std::string::npos)
      << "help shows the env var: " << describe(p);
  EXPECT_TRUE(p.err.empty()) << describe(p);
}

TEST(ConfigParse, EnvironmentIsReadAndTheFlagWins) {
  ScopedEnv x("TOPICFLOW_X", "7");
  ScopedEnv name("TOPICFLOW_NAME", "from-env");
  ScopedEnv verbose("TOPICFLOW_VERBOSE", "true");
  {
    CLI::App app("test");
    Options o;
    add_options(app, o);
    const auto p = parse(app, Argv{});
    EXPECT_FALSE(p.code.has_value()) << describe(p);
    EXPECT_EQ(o.x, 7) << "TOPICFLOW_X is read";
    EXPECT_EQ(o.name, "from-env") << "TOPICFLOW_NAME is read";
    EXPECT_TRUE(o.verbose) << "TOPICFLOW_VERBOSE is read";
  }
  {
    CLI::App app("test");
    Options o;
    add_options(app, o);
    const auto p = parse(app, Argv{"--x", "9", "--name", "from-flag"});
    EXPECT_FALSE(p.code.has_value()) << describe(p);
    EXPECT_EQ(o.x, 9) << "the flag wins over TOPICFLOW_X";
    EXPECT_EQ(o.name, "from-flag") << "the flag wins over TOPICFLOW_NAME";
  }
}

TEST(ConfigParse, BadEnvironmentValueExitsTwo) {
  ScopedEnv x("TOPICFLOW_X", "seven");
  CLI::App app("test");
  Options o;
  add_options(app, o);
  const auto p = parse(app, Argv{});
  ASSERT_TRUE(p.code.has_value()) << describe(p);
  EXPECT_EQ(*p.code, 2) << describe(p);
}

TEST(ConfigParse, LogLevelIsChecked) {
  for (const char* level : {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
    CLI::App app("test");
    std::string value = "info";
    add_log_level_option(app, value);
    const auto p = parse(app, Argv{"--log-level", level});
    EXPECT_FALSE(p.code.has_value()) << level << ": " << describe(p);
    EXPECT_EQ(value, level);
  }
  CLI::App app("test");
  std::string value = "info";
  add_log_level_option(app, value);
  const auto p = parse(app, Argv{"--log-level", "loud"});
  ASSERT_TRUE(p.code.has_value()) << describe(p);
  EXPECT_EQ(*p.code, 2) << describe(p);
  {
    ScopedEnv env("TOPICFLOW_LOG_LEVEL", "debug");
    CLI::App from_env("test");
    std::string level = "info";
    add_log_level_option(from_env, level);
    const auto q = parse(from_env, Argv{});
    EXPECT_FALSE(q.code.has_value()) << describe(q);
    EXPECT_EQ(level, "debug") << "TOPICFLOW_LOG_LEVEL is read";
  }
}

TEST(ConfigEndpoints, DefaultsFlagsAndEnvironment) {
  {
    CLI::App app("test");
    topicflow::Endpoints e;
    add_endpoint_options(app, e);
    const auto p = parse(app, Argv{});
    EXPECT_FALSE(p.code.has_value()) << describe(p);
    EXPECT_EQ(e.frontend, "tcp://127.0.0.1:5557");
    EXPECT_EQ(e.backend, "tcp://127.0.0.1:5558");
    EXPECT_EQ(e.sink, "tcp://127.0.0.1:5559");
    EXPECT_EQ(e.events, "tcp://127.0.0.1:5560");
    EXPECT_NO_THROW(topicflow::validate_endpoints(e)) << "the defaults are valid";
  }
  {
    ScopedEnv sink("TOPICFLOW_SINK", "ipc:///tmp/from-env.sock");
    CLI::App app("test");
    topicflow::Endpoints e;
    add_endpoint_options(app, e);
    const auto p =
        parse(app, Argv{"--frontend", "tcp://10.0.0.1:7000", "--events", "inproc://events"});
    EXPECT_FALSE(p.code.has_value()) << describe(p);
    EXPECT_EQ(e.frontend, "tcp://10.0.0.1:7000");
    EXPECT_EQ(e.backend, "tcp://127.0.0.1:5558");
    EXPECT_EQ(e.sink, "ipc:///tmp/from-env.sock") << "TOPICFLOW_SINK is read";
    EXPECT_EQ(e.events, "inproc://events");
  }
}

TEST(ConfigEndpoints, ValidateAccepts) {
  for (const char* good :
       {"tcp://127.0.0.1:5557", "tcp://*:5557", "tcp://127.0.0.1:*", "tcp://localhost:0",
        "tcp://host.example.com:65535", "tcp://[::1]:5557", "tcp://eth0:1",
        "ipc:///tmp/topicflow/sink.sock", "ipc://@abstract", "inproc://sink"}) {
    EXPECT_NO_THROW(validate_endpoint("--sink", good)) << good;
  }
}

TEST(ConfigEndpoints, ValidateRejectsWithAReadableReason) {
  for (const char* bad :
       {"", "localhost:5557", "http://127.0.0.1:5557", "tcp://", "tcp://127.0.0.1", "tcp://:5557",
        "tcp://127.0.0.1:", "tcp://127.0.0.1:abc", "tcp://127.0.0.1:-1", "tcp://127.0.0.1:65536",
        "tcp://127.0.0.1:999999999999", "tcp://127.0.0.1:5557x", "ipc://", "inproc://",
        "TCP://127.0.0.1:5557"}) {
    try {
      validate_endpoint("--backend", bad);
      ADD_FAILURE() << "'" << bad << "' was accepted";
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("--backend"), std::string::npos) << "the reason names the flag: " << what;
      EXPECT_NE(what.find("'" + std::string(bad) + "'"), std::string::npos)
          << "and the value: " << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << "one line: " << what;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "'" << bad << "' threw a non-invalid_argument: " << e.what();
    }
  }
}

TEST(ConfigEndpoints, ValidateEndpointsNamesTheBadOne) {
  topicflow::Endpoints e;
  e.events = "tcp://127.0.0.1:http";
  try {
    topicflow::validate_endpoints(e);
    FAIL() << "a bad --events should be rejected";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("--events"), std::string::npos) << error.what();
  }
}
