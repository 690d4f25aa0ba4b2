#include <topicflow/config.hpp>
#include <topicflow/curve.hpp>
#include <topicflow/log.hpp>
#include <topicflow/metrics.hpp>
#include <topicflow/run_worker.hpp>
#include <topicflow/shutdown.hpp>
#include <topicflow/worker_metrics.hpp>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <stdexcept>
#include <utility>

namespace topicflow {

HandlerOptions handler_options(const WorkerConfig& config) {
  HandlerOptions options;
  options.max_result_bytes =
      static_cast<std::size_t>(std::max<std::int64_t>(0, config.max_result_bytes));
  return options;
}

int run_worker(int argc, char** argv, HandlerFactory make_handler_for,
               const RunWorkerOptions& given) {
  RunWorkerOptions options = given;
  if (options.program.empty()) {
    options.program = argc > 0 && argv[0] != nullptr
                          ? std::filesystem::path(argv[0]).filename().string()
                          : "worker";
  }
  WorkerConfig cfg;
  std::string log_level = "info";
  int metrics_port = 0;
  std::string metrics_address = "127.0.0.1";
  CLI::App app{options.description, options.program};
  add_endpoint_options(app, cfg.endpoints);
  add_flag_option(app, "--concurrency", cfg.concurrency, "handlers running at once");
  if (options.handler_option) {
    add_flag_option(app, "--handler", cfg.handler,
                    "noop | sleep:MIN-MAX | fail:P | sleep:MIN-MAX,fail:P | exec:COMMAND | "
                    "exec-persistent:COMMAND");
  }
  add_flag_option(app, "--lease-ms", cfg.lease_ms, "task lease; heartbeats are sent every lease/3");
  add_flag_option(app, "--task-timeout-ms", cfg.task_timeout_ms,
                  "per-task timeout, a retryable failure (0: none)");
  add_flag_option(app, "--shutdown-grace-ms", cfg.shutdown_grace_ms,
                  "on SIGTERM, wait this long for running tasks before releasing them");
  add_flag_option(app, "--max-result-bytes", cfg.max_result_bytes,
                  "largest result reported (exec: stdout is truncated)");
  add_flag_option(app, "--flush-ms", cfg.flush_ms,
                  "reports are sent at most this long after their first update");
  add_flag_option(app, "--id", cfg.id, "worker id in reports (default: HOSTNAME-PID)");
  add_metrics_options(app, metrics_port, metrics_address);
  CurveOptions curve;
  add_curve_options(app, curve);
  add_log_level_option(app, log_level);
  if (options.add_options) options.add_options(app);
  if (auto code = parse_command_line(app, argc, argv)) return *code;

  const WorkerMetrics metrics;
  std::unique_ptr<Worker> worker;
  try {
    cfg.security = load_security(curve, {.broker = true, .sink = true});
    auto handler = make_handler_for ? make_handler_for(cfg) : nullptr;
    if (!handler) throw std::invalid_argument("no handler");
    if (!options.handler_option) cfg.handler = handler->describe();
    worker = std::make_unique<Worker>(cfg, metrics.instrument(std::move(handler)));
  } catch (const std::invalid_argument& e) {
    std::cerr << options.program << ": error: " << e.what() << "\n";
    return 2;
  }
  try {
    init_logging("worker", log_level);
    log_security(cfg.security);
    StopSignal stop;
    install_signal_handlers(stop);
    const auto server = serve_metrics(  // declared after what it reads: stops serving first
        metrics_address, metrics_port, [&] { return metrics.render(*worker, cfg); },
        [&] { return stop.triggered() ? std::string("stopping") : std::string(); });
    worker->run(stop);
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  return 0;
}

int run_worker(int argc, char** argv, std::unique_ptr<Handler> handler,
               const RunWorkerOptions& options) {
  auto shared = std::make_shared<std::unique_ptr<Handler>>(std::move(handler));
  return run_worker(
      argc, argv, [shared](const WorkerConfig&) { return std::move(*shared); }, options);
}

}  // namespace topicflow
