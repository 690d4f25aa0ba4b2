#pragma once
// The whole topicflow-worker program around a handler: command line (every flag also read from
// TOPICFLOW_<FLAG>), logging, SIGINT/SIGTERM, the optional metrics endpoint, and the Worker.
// A custom worker binary is one call:
//
//   int main(int argc, char** argv) {
//     return topicflow::run_worker(argc, argv, std::make_unique<MyHandler>());
//   }
//
// and takes the stock worker's flags: --frontend/--backend/--sink/--events, --concurrency,
// --lease-ms, --task-timeout-ms, --shutdown-grace-ms, --max-result-bytes, --flush-ms, --id,
// --metrics-port/--metrics-address, the --curve-* keys, --log-level (see `topicflow-worker
// --help`).

#include <topicflow/handler.hpp>
#include <topicflow/worker.hpp>

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <string>

namespace topicflow {

struct RunWorkerOptions {
  std::string program;  // name in --help and in error messages (empty: argv[0]'s file name)
  std::string description =
      "topicflow worker: runs a handler on tasks from the broker and reports to the sink";
  // Adds your own flags (bind them to variables that your handler factory reads).
  std::function<void(CLI::App&)> add_options;
  // Offers --handler SPEC (make_handler's specs) and stores it in WorkerConfig::handler; the
  // stock topicflow-worker sets this. Otherwise WorkerConfig::handler is the handler's describe().
  bool handler_option = false;
};

// Makes the handler once the command line is parsed. Throwing std::invalid_argument is reported
// as a bad flag (one line on stderr, exit 2).
using HandlerFactory = std::function<std::unique_ptr<Handler>(const WorkerConfig&)>;

// Parses argv, then serves until SIGINT/SIGTERM (finishing or releasing running tasks, see
// Worker::run). Returns the process's exit code: 0 after a clean stop or --help, 2 for a bad
// flag or a factory's std::invalid_argument, 1 for a runtime error (logged, e.g. an endpoint
// that cannot be connected or a metrics port in use). Call it once per process: it installs
// the signal handlers.
[[nodiscard]] int run_worker(int argc, char** argv, HandlerFactory make_handler_for,
                             const RunWorkerOptions& given = {});
[[nodiscard]] int run_worker(int argc, char** argv, std::unique_ptr<Handler> handler,
                             const RunWorkerOptions& options = {});

// The stock topicflow-worker program: run_worker() with --handler and make_handler(). Its main
// is this call; `topicflow run` calls it too, in worker processes it forks from itself.
[[nodiscard]] int stock_worker_main(int argc, char** argv);

// HandlerOptions for make_handler() from a worker's configuration (--max-result-bytes).
[[nodiscard]] HandlerOptions handler_options(const WorkerConfig& config);

}  // namespace topicflow
