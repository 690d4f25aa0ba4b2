// topicflow::run_worker(): the command line it gives a custom worker (label unit). Serving is
// covered end to end by custom_worker_install (tests/install_test.cpp) and every e2e test.
#include <topicflow/run_worker.hpp>

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace topicflow {
namespace {

class Echo final : public Handler {
 public:
  Outcome handle(const TaskView& task, const CancelToken&) override {
    return Outcome::completed(std::string(task.payload));
  }
  std::string describe() const override { return "echo"; }
};

int run(std::vector<std::string> args, HandlerFactory factory,
        const RunWorkerOptions& options = {}) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return run_worker(static_cast<int>(args.size()), argv.data(), std::move(factory), options);
}

TEST(RunWorker, HelpListsTheStockFlagsAndYoursButNoHandlerFlag) {
  std::int64_t mine = 0;
  RunWorkerOptions options;
  options.add_options = [&](CLI::App& app) { app.add_option("--my-flag", mine, "mine"); };
  bool made = false;
  ::testing::internal::CaptureStdout();
  const int code = run(
      {"my-worker", "--help"},
      [&](const WorkerConfig&) {
        made = true;
        return std::make_unique<Echo>();
      },
      options);
  const auto help = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(code, 0);
  EXPECT_FALSE(made) << "--help must not make the handler";
  for (const char* flag : {"my-worker", "--backend", "--concurrency", "--task-timeout-ms",
                           "--metrics-port", "--my-flag"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag << " missing:\n" << help;
  }
  EXPECT_EQ(help.find("--handler"), std::string::npos) << help;
}

TEST(RunWorker, BadFlagsAndRejectedConfigurationsExitTwo) {
  const auto factory = [](const WorkerConfig&) { return std::make_unique<Echo>(); };
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run({"w", "--concurrency", "many"}, factory), 2);
  EXPECT_EQ(run({"w", "--no-such-flag"}, factory), 2);
  EXPECT_EQ(run({"w", "--concurrency", "0"}, factory), 2) << "the Worker rejects concurrency 0";
  EXPECT_EQ(run({"w", "--backend", "nonsense"}, factory), 2);
  EXPECT_EQ(run({"w"},
                [](const WorkerConfig&) -> std::unique_ptr<Handler> {
                  throw std::invalid_argument("--my-flag: out of range");
                }),
            2);
  EXPECT_EQ(run({"w"}, [](const WorkerConfig&) { return std::unique_ptr<Handler>(); }), 2);
  const auto err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("w: error: --my-flag: out of range"), std::string::npos) << err;
}

TEST(RunWorker, TheFactorySeesTheParsedConfiguration) {
  WorkerConfig seen;
  ::testing::internal::CaptureStderr();
  // A bad endpoint makes the Worker constructor throw after the factory ran: nothing is served.
  const int code = run({"w", "--concurrency", "7", "--task-timeout-ms", "1234",
                        "--max-result-bytes", "99", "--backend", "nonsense"},
                       [&](const WorkerConfig& cfg) {
                         seen = cfg;
                         return std::make_unique<Echo>();
                       });
  ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(code, 2);
  EXPECT_EQ(seen.concurrency, 7);
  EXPECT_EQ(seen.task_timeout_ms, 1234);
  EXPECT_EQ(seen.max_result_bytes, 99);
  EXPECT_EQ(handler_options(seen).max_result_bytes, 99U);
}

}  // namespace
}  // namespace topicflow
