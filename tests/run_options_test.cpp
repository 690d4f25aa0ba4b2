// `topicflow run`'s command line (cli/run.cpp, RunCommandLine): it takes the role options the
// spec lists from the roles' own definitions and passes on what was given (label unit).
#include <topicflow/cli.hpp>

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace topicflow::cli {
namespace {

using Args = std::vector<std::pair<std::string, std::string>>;

class Argv {
 public:
  Argv(std::initializer_list<std::string> args) : args_(args) {
    args_.insert(args_.begin(), "run");
    for (auto& a : args_) pointers_.push_back(a.data());
  }
  [[nodiscard]] int argc() const { return static_cast<int>(args_.size()); }
  [[nodiscard]] char** argv() { return pointers_.data(); }

 private:
  std::vector<std::string> args_;
  std::vector<char*> pointers_;
};

struct Parsed {
  RunOptions options;
  CLI::App app{"run", "run"};
  RunCommandLine line{app, options};
  explicit Parsed(Argv args) {
    app.parse(args.argc(), args.argv());
    line.collect_forwarded();
  }
};

TEST(RunOptions, TakesEveryRoleOptionTheSpecLists) {
  RunOptions options;
  CLI::App app{"run", "run"};
  const RunCommandLine line(app, options);
  for (const char* flag : {"--db", "--job", "--workers", "--concurrency", "--handler",
                           "--batch-max", "--batch-delay-ms", "--lease-ms", "--max-attempts",
                           "--retry-base-ms", "--retry-max-ms", "--task-timeout-ms"}) {
    EXPECT_NE(app.get_option_no_throw(flag), nullptr) << "topicflow run has no " << flag;
  }
}

TEST(RunOptions, PassesOnWhatWasGivenAndTheStructuralOnesAlways) {
  const Parsed p({"--handler", "sleep:1-2", "--batch-max", "50", "--lease-ms", "900",
                  "--task-timeout-ms", "70", "--job", "j", "-"});
  EXPECT_EQ(p.options.file, "-");
  EXPECT_EQ(p.options.producer.job, "j") << "the producer's work runs in run: its config";
  EXPECT_EQ(p.options.worker_args, (Args{{"--handler", "sleep:1-2"},
                                         {"--concurrency", "1"},
                                         {"--lease-ms", "900"},
                                         {"--task-timeout-ms", "70"}}))
      << "--lease-ms reaches the workers too: they heartbeat every lease/3";
  EXPECT_EQ(p.options.sink_args,
            (Args{{"--db", "topicflow.db"}, {"--batch-max", "50"}, {"--lease-ms", "900"}}));
  EXPECT_EQ(p.options.sink.batch_max, 50) << "bound to the sink's own config";
  EXPECT_EQ(p.options.worker.lease_ms, 900);
}

TEST(RunOptions, RangesAreTheRolesOwn) {
  RunOptions options;
  CLI::App app{"run", "run"};
  const RunCommandLine line(app, options);
  Argv args{"--batch-max", "0", "-"};
  EXPECT_THROW(app.parse(args.argc(), args.argv()), CLI::ValidationError)
      << "the sink takes --batch-max 1..1000000, so run does too";
}

TEST(RunOptions, WhatRunPassesOnIsCheckedBeforeAnythingStarts) {
  for (const char* spec : {"bogus", "sleep:100-20", "exec:", "fail:2"}) {
    const Parsed p({"--handler", spec, "-"});
    EXPECT_THROW(validate_run_options(p.options), std::invalid_argument) << spec;
  }
  const Parsed good({"--handler", "sleep:20-100,fail:0.1", "-"});
  EXPECT_NO_THROW(validate_run_options(good.options));
}

}  // namespace
}  // namespace topicflow::cli
