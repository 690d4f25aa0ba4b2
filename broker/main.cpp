// topicflow-broker: streams tasks from --frontend (PULL) to the workers on --backend (PUSH).
#include <topicflow/broker.hpp>
#include <topicflow/config.hpp>
#include <topicflow/log.hpp>
#include <topicflow/shutdown.hpp>

#include <exception>

int main(int argc, char** argv) {
  topicflow::BrokerConfig config;
  std::string log_level = "info";
  CLI::App app{"Streams tasks from the frontend (PULL) to the workers (PUSH).", "topicflow-broker"};
  topicflow::add_endpoint_options(app, config.endpoints);
  topicflow::add_flag_option(app, "--hwm", config.hwm, "tasks queued in the broker's frontend")
      ->check(CLI::Range(0, 10000000));
  topicflow::add_flag_option(app, "--backend-hwm", config.backend_hwm,
                             "tasks queued per worker connection (small: no hoarding)")
      ->check(CLI::Range(1, 1000000));
  topicflow::add_log_level_option(app, log_level);
  if (auto code = topicflow::parse_command_line(app, argc, argv)) return *code;
  try {
    topicflow::init_logging("broker", log_level);
    topicflow::StopSignal stop;
    topicflow::install_signal_handlers(stop);
    topicflow::Broker{config}.run(stop);
    return 0;
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
}
