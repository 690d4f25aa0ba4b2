#include <topicflow/config.hpp>
#include <topicflow/curve.hpp>
#include <topicflow/log.hpp>
#include <topicflow/metrics.hpp>
#include <topicflow/orphan_reaper.hpp>
#include <topicflow/run_worker.hpp>
#include <topicflow/shutdown.hpp>
#include <topicflow/worker_metrics.hpp>
#include <topicflow/worker_options.hpp>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <system_error>
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
  CommonOptions common;
  CLI::App app{options.description, options.program};
  add_worker_options(app, cfg);
  // Only the stock worker makes its handler from a spec; a custom worker's is its own.
  if (!options.handler_option) app.remove_option(app.get_option("--handler"));
  add_common_options(app, cfg.endpoints, common);
  if (options.add_options) options.add_options(app);
  const WorkerMetrics metrics;
  std::unique_ptr<Worker> worker;
  if (auto code = parse_command_line(app, argc, argv, [&] {
        cfg.security = load_security(common.curve, {.broker = true, .sink = true});
        auto handler = make_handler_for ? make_handler_for(cfg) : nullptr;
        if (!handler) throw std::invalid_argument("no handler");
        if (!options.handler_option) cfg.handler = handler->describe();
        worker = std::make_unique<Worker>(cfg, metrics.instrument(std::move(handler)));
      })) {
    return *code;
  }
  init_logging("worker", common.log_level);
  log_security(cfg.security);
  try {
    StopSignal stop;
    install_signal_handlers(stop);
    // What handlers' commands leave behind comes to us, not to a PID 1 that may never reap it.
    std::optional<OrphanReaper> reaper;
    try {
      reaper.emplace();
    } catch (const std::system_error& e) {
      spdlog::warn("orphans of handlers are left to PID 1: {}", e.what());
    }
    const auto server = serve_metrics(  // declared after what it reads: stops serving first
        cfg.metrics_address, cfg.metrics_port, [&] { return metrics.render(*worker, cfg); },
        [&] { return stop.triggered() ? std::string("stopping") : std::string(); });
    worker->run(stop);
    return 0;
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
}

int run_worker(int argc, char** argv, std::unique_ptr<Handler> handler,
               const RunWorkerOptions& options) {
  auto shared = std::make_shared<std::unique_ptr<Handler>>(std::move(handler));
  return run_worker(
      argc, argv, [shared](const WorkerConfig&) { return std::move(*shared); }, options);
}

int stock_worker_main(int argc, char** argv) {
  RunWorkerOptions options;
  options.program = "topicflow-worker";
  options.handler_option = true;
  return run_worker(
      argc, argv,
      [](const WorkerConfig& cfg) { return make_handler(cfg.handler, handler_options(cfg)); },
      options);
}

}  // namespace topicflow
