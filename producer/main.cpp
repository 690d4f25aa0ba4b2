// topicflow-producer: registers a job's topics with the sink and optionally waits for the job.
#include <topicflow/config.hpp>
#include <topicflow/log.hpp>
#include <topicflow/producer.hpp>
#include <topicflow/shutdown.hpp>

#include <iostream>
#include <optional>
#include <stdexcept>

int main(int argc, char** argv) {
  using namespace topicflow;
  ProducerConfig cfg;
  std::string log_level = "info";
  CLI::App app{
      "topicflow producer: registers topics with the sink (text: one per line; JSON Lines: key + "
      "payload)",
      "topicflow-producer"};
  app.add_option("FILE", cfg.file,
                 "input file, or - for stdin (optional only with --requeue-failed)");
  add_flag_option(app, "--job", cfg.job, "job name");
  add_flag_option(app, "--format", cfg.format, "input format (auto: .jsonl files are JSON Lines)")
      ->check(CLI::IsMember({"auto", "text", "jsonl"}));
  add_bool_flag(app, "--wait", cfg.wait,
                "follow the job until every topic is terminal; exit 1 if any failed");
  add_bool_flag(app, "--requeue-failed", cfg.requeue_failed,
                "with FILE: run the file's failed topics again; without: requeue every failed "
                "topic of --job");
  add_flag_option(app, "--chunk-size", cfg.chunk_size, "topics per submit message");
  add_flag_option(app, "--connect-timeout-ms", cfg.connect_timeout_ms,
                  "give up if the sink does not answer within this");
  add_flag_option(app, "--ack-timeout-ms", cfg.ack_timeout_ms,
                  "resend a chunk not acknowledged within this, then fail");
  add_flag_option(app, "--progress", cfg.progress,
                  "with --wait: bar, lines, none, or auto (bar on a terminal)")
      ->check(CLI::IsMember({"auto", "bar", "lines", "none"}));
  add_endpoint_options(app, cfg.endpoints);
  CurveOptions curve;
  add_curve_options(app, curve);
  add_log_level_option(app, log_level);
  if (auto code = parse_command_line(app, argc, argv)) return *code;

  std::optional<Producer> producer;
  try {
    validate_endpoints(cfg.endpoints);
    cfg.security = load_security(curve, {.sink = true});
    producer.emplace(cfg);
  } catch (const std::invalid_argument& e) {
    std::cerr << "topicflow-producer: error: " << e.what() << " (see --help)\n";
    return 2;
  }
  try {
    init_logging("producer", log_level);
    log_security(cfg.security);
    StopSignal stop;
    install_signal_handlers(stop);
    return producer->run(stop);
  } catch (const std::exception& e) {
    std::cerr << "topicflow-producer: error: " << e.what() << "\n";
    return 1;
  }
}
