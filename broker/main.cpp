// topicflow-broker: streams tasks from --frontend (PULL) to the workers on --backend (PUSH).
#include <topicflow/broker.hpp>
#include <topicflow/config.hpp>
#include <topicflow/log.hpp>
#include <topicflow/metrics.hpp>
#include <topicflow/shutdown.hpp>

#include <exception>
#include <iostream>
#include <memory>

int main(int argc, char** argv) {
  topicflow::BrokerConfig config;
  std::string log_level = "info";
  int metrics_port = 0;
  std::string metrics_address = "127.0.0.1";
  CLI::App app{"Streams tasks from the frontend (PULL) to the workers (PUSH).", "topicflow-broker"};
  topicflow::add_endpoint_options(app, config.endpoints);
  topicflow::add_flag_option(app, "--hwm", config.hwm, "tasks queued in the broker's frontend")
      ->check(CLI::Range(0, 10000000));
  topicflow::add_flag_option(app, "--backend-hwm", config.backend_hwm,
                             "tasks queued per worker connection (small: no hoarding)")
      ->check(CLI::Range(1, 1000000));
  topicflow::add_metrics_options(app, metrics_port, metrics_address);
  topicflow::CurveOptions curve;
  topicflow::add_curve_options(app, curve);
  topicflow::add_log_level_option(app, log_level);
  if (auto code = topicflow::parse_command_line(app, argc, argv)) return *code;
  try {
    config.security = topicflow::load_security(curve, {.server = true, .sink = true});
  } catch (const std::invalid_argument& e) {
    std::cerr << "topicflow-broker: error: " << e.what() << "\n";
    return 2;
  }
  try {
    topicflow::init_logging("broker", log_level);
    topicflow::log_security(config.security);
    topicflow::StopSignal stop;
    topicflow::install_signal_handlers(stop);
    topicflow::Broker broker{config};
    const auto metrics = topicflow::serve_metrics(  // after the broker: stops serving first
        metrics_address, metrics_port, [&broker] { return broker.metrics_text(); },
        [&stop] { return stop.triggered() ? std::string("stopping") : std::string(); });
    broker.run(stop);
    return 0;
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
}
