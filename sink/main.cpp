// topicflow-sink: the only database writer; commits status updates in batches and schedules
// every dispatch.
#include <topicflow/config.hpp>
#include <topicflow/log.hpp>
#include <topicflow/shutdown.hpp>
#include <topicflow/sink.hpp>
#include <topicflow/sink_options.hpp>

int main(int argc, char** argv) {
  using namespace topicflow;
  SinkConfig cfg;
  CommonOptions common;
  CLI::App app{"topicflow-sink: the only database writer; commits status updates in batches",
               "topicflow-sink"};
  add_sink_options(app, cfg);
  add_common_options(app, cfg.endpoints, common);
  if (auto code = parse_command_line(app, argc, argv, [&] {
        validate_endpoints(cfg.endpoints);
        validate_http(cfg);
        cfg.security = load_security(common.curve, {.server = true, .broker = true});
      })) {
    return *code;
  }
  init_logging("sink", common.log_level);
  log_security(cfg.security);
  try {
    StopSignal stop;
    install_signal_handlers(stop);
    Sink{cfg}.run(stop);
    return 0;
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
}
