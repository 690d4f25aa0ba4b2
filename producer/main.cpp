// topicflow-producer: registers a job's topics with the sink and optionally waits for the job.
#include <topicflow/config.hpp>
#include <topicflow/log.hpp>
#include <topicflow/producer.hpp>
#include <topicflow/producer_options.hpp>
#include <topicflow/shutdown.hpp>

#include <optional>

int main(int argc, char** argv) {
  using namespace topicflow;
  ProducerConfig cfg;
  CommonOptions common;
  CLI::App app{
      "topicflow-producer: registers topics with the sink (text: one per line; JSON "
      "Lines: key + payload)",
      "topicflow-producer"};
  app.add_option("FILE", cfg.file, "input file, or - for stdin (optional with --requeue-failed)");
  add_producer_options(app, cfg);
  add_common_options(app, cfg.endpoints, common);
  std::optional<Producer> producer;
  if (auto code = parse_command_line(app, argc, argv, [&] {
        validate_endpoints(cfg.endpoints);
        cfg.security = load_security(common.curve, {.sink = true});
        producer.emplace(cfg);
      })) {
    return *code;
  }
  init_logging("producer", common.log_level);
  log_security(cfg.security);
  try {
    StopSignal stop;
    install_signal_handlers(stop);
    return producer->run(stop);
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
}
