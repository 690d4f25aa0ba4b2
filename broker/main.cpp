// topicflow-broker: streams tasks from --frontend (PULL) to the workers on --backend (PUSH).
#include <topicflow/broker.hpp>
#include <topicflow/broker_options.hpp>
#include <topicflow/config.hpp>
#include <topicflow/log.hpp>
#include <topicflow/metrics.hpp>
#include <topicflow/shutdown.hpp>

int main(int argc, char** argv) {
  using namespace topicflow;
  BrokerConfig cfg;
  CommonOptions common;
  CLI::App app{"topicflow-broker: streams tasks from the frontend (PULL) to the workers (PUSH)",
               "topicflow-broker"};
  add_broker_options(app, cfg);
  add_common_options(app, cfg.endpoints, common);
  if (auto code = parse_command_line(app, argc, argv, [&] {
        validate_endpoints(cfg.endpoints);
        cfg.security = load_security(common.curve, {.server = true, .sink = true});
      })) {
    return *code;
  }
  init_logging("broker", common.log_level);
  log_security(cfg.security);
  try {
    StopSignal stop;
    install_signal_handlers(stop);
    Broker broker{cfg};
    const auto metrics = serve_metrics(  // after the broker: stops serving first
        cfg.metrics_address, cfg.metrics_port, [&broker] { return broker.metrics_text(); },
        [&stop] { return stop.triggered() ? std::string("stopping") : std::string(); });
    broker.run(stop);
    return 0;
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
}
