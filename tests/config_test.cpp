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

// ---- one definition per option: subsets, pass-through, Markdown, validation, --version --------

TEST(ConfigSubset, KeepsOnlyTheNamedOptionsOfThoseAdded) {
  CLI::App app("test", "topicflow-test");
  int own = 0;
  add_flag_option(app, "--own", own, "the program's own");
  Options o;
  topicflow::add_options_subset(app, [&](CLI::App& a) { add_options(a, o); }, {"--x"});
  EXPECT_NE(app.get_option_no_throw("--own"), nullptr) << "options added before stay";
  EXPECT_NE(app.get_option_no_throw("--x"), nullptr);
  EXPECT_EQ(app.get_option_no_throw("--name"), nullptr);
  EXPECT_EQ(app.get_option_no_throw("--verbose"), nullptr);
  // A left-out name is free again: the program may define its own option of that name.
  std::string mine;
  EXPECT_NO_THROW(add_flag_option(app, "--name", mine, "the program's own --name"));
  const auto p = parse(app, Argv{"--x", "7", "--name", "n"});
  EXPECT_FALSE(p.code.has_value()) << describe(p);
  EXPECT_EQ(o.x, 7) << "the kept option is bound to the role's config";
  EXPECT_EQ(o.name, "default") << "the role's --name was left out";
  EXPECT_EQ(mine, "n");
}

TEST(ConfigSubset, AFlagTheRoleDoesNotHaveIsAnError) {
  CLI::App app("test");
  Options o;
  EXPECT_THROW(
      topicflow::add_options_subset(app, [&](CLI::App& a) { add_options(a, o); }, {"--nope"}),
      std::logic_error);
}

TEST(ConfigOptionArgs, GivenValuesAndOptionallyTheDefaults) {
  CLI::App app("test");
  Options o;
  add_options(app, o);
  const ScopedEnv env("TOPICFLOW_NAME", "from-env");
  const auto p = parse(app, Argv{"--x", "3", "--x", "4"});
  ASSERT_FALSE(p.code.has_value()) << describe(p);
  using Args = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(topicflow::option_args(app, {"--x", "--name"}),
            (Args{{"--x", "4"}, {"--name", "from-env"}}))
      << "the last of a repeated flag, and a value from the environment count as given";
  CLI::App quiet("test");
  Options q;
  add_options(quiet, q);
  ASSERT_FALSE(parse(quiet, Argv{}).code.has_value());
  EXPECT_TRUE(topicflow::option_args(quiet, {"--x"}).empty()) << "not given: not passed on";
  EXPECT_EQ(topicflow::option_args(quiet, {"--x"}, /*defaults=*/true), (Args{{"--x", "1"}}));
}

TEST(ConfigMarkdown, OneRowPerOptionWithItsDefaultAndHelp) {
  CLI::App app("test", "topicflow-test");
  Options o;
  add_options(app, o);
  std::string format = "auto";
  add_flag_option(app, "--format", format, "input format")->check(CLI::IsMember({"auto", "text"}));
  std::int64_t wait_ms = 20;
  add_flag_option(app, "--wait-ms", wait_ms, "how long");
  topicflow::Endpoints endpoints;
  topicflow::CommonOptions common;
  topicflow::add_common_options(app, endpoints, common);
  const auto own = topicflow::flags_markdown(app, "own");
  EXPECT_EQ(own,
            "| flag | default | meaning |\n"
            "|---|---|---|\n"
            "| `--x N` | 1 | an integer |\n"
            "| `--name TEXT` | `default` | a string |\n"
            "| `--verbose` | off | a boolean flag |\n"
            "| `--format auto\\|text` | `auto` | input format |\n"
            "| `--wait-ms MS` | 20 | how long |\n");
  const auto common_table = topicflow::flags_markdown(app, "common");
  for (const char* flag :
       {"--frontend", "--backend", "--sink", "--events", "--curve-secret-key", "--curve-broker-key",
        "--curve-sink-key", "--curve-authorized", "--log-level"}) {
    EXPECT_NE(common_table.find(std::string("`") + flag + " "), std::string::npos)
        << flag << " missing:\n"
        << common_table;
    EXPECT_EQ(own.find(flag), std::string::npos) << flag << " is not the program's own";
  }
  EXPECT_EQ(common_table.find("--version"), std::string::npos) << common_table;
}

TEST(ConfigMarkdown, TheHiddenFlagPrintsTheTableWithoutRequiredArguments) {
  CLI::App app("test", "topicflow-test");
  std::string file;
  app.add_option("FILE", file, "input")->required();
  Options o;
  add_options(app, o);
  topicflow::add_markdown_flag(app);
  const auto p = parse(app, Argv{"--help-markdown", "own"});
  ASSERT_TRUE(p.code.has_value()) << describe(p);
  EXPECT_EQ(*p.code, 0) << describe(p);
  EXPECT_EQ(p.out, topicflow::flags_markdown(app, "own")) << describe(p);
  EXPECT_EQ(app.help().find("help-markdown"), std::string::npos) << "hidden from --help";
}

TEST(ConfigParse, VersionPrintsTheProgramAndVersion) {
  CLI::App app("test", "topicflow-test");
  topicflow::add_version_flag(app);
  const auto p = parse(app, Argv{"--version"});
  ASSERT_TRUE(p.code.has_value()) << describe(p);
  EXPECT_EQ(*p.code, 0) << describe(p);
  EXPECT_EQ(p.out, "topicflow-test " + std::string(topicflow::version()) + "\n") << describe(p);
  EXPECT_FALSE(topicflow::version().empty());
}

TEST(ConfigParse, AFailedValidationExitsTwoWithOneLine) {
  CLI::App app("test", "topicflow-test");
  Options o;
  add_options(app, o);
  testing::internal::CaptureStderr();
  Argv args{"--x", "5"};
  const auto code = parse_command_line(app, args.argc(), args.argv(), [&] {
    if (o.x > 3) throw std::invalid_argument("--x must be at most 3");
  });
  const auto err = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 2);
  EXPECT_EQ(err, "topicflow-test: error: --x must be at most 3\n");
}
