#include <topicflow/config.hpp>
#include <topicflow/log.hpp>
#include <topicflow/shutdown.hpp>
#include <topicflow/sink.hpp>

int main(int argc, char** argv) {
  topicflow::SinkConfig cfg;
  std::string log_level = "info";
  CLI::App app{"topicflow-sink: the only database writer; commits status updates in batches",
               "topicflow-sink"};
  using topicflow::add_flag_option;
  add_flag_option(app, "--db", cfg.db, "SQLite database file (created if missing; WAL)");
  add_flag_option(app, "--batch-max", cfg.batch_max, "commit when this many updates are buffered")
      ->check(CLI::Range(1, 1000000));
  add_flag_option(app, "--batch-delay-ms", cfg.batch_delay_ms,
                  "commit at most this long after the first buffered update")
      ->check(CLI::Range(0, 60000));
  add_flag_option(app, "--lease-ms", cfg.lease_ms,
                  "a running task without heartbeat for this long is redelivered")
      ->check(CLI::Range(100, 86400000));
  add_flag_option(app, "--max-attempts", cfg.max_attempts,
                  "deliveries per topic before it is failed")
      ->check(CLI::Range(1, 1000));
  add_flag_option(app, "--retry-base-ms", cfg.retry_base_ms,
                  "first retry backoff cap (doubles per retry, full jitter)")
      ->check(CLI::Range(0, 86400000));
  add_flag_option(app, "--retry-max-ms", cfg.retry_max_ms, "retry backoff cap")
      ->check(CLI::Range(0, 86400000));
  add_flag_option(app, "--dispatch-timeout-ms", cfg.dispatch_timeout_ms,
                  "a dispatched task not started within this is sent again")
      ->check(CLI::Range(100, 86400000));
  add_flag_option(app, "--dispatch-window", cfg.dispatch_window,
                  "most tasks handed to the broker and not yet started")
      ->check(CLI::Range(1, 1000000));
  add_flag_option(app, "--buffer-max", cfg.buffer_max,
                  "updates held while the database is busy before reading pauses")
      ->check(CLI::Range(1, 10000000));
  add_flag_option(app, "--busy-base-ms", cfg.busy_base_ms, "first busy-retry backoff cap")
      ->check(CLI::Range(1, 60000));
  add_flag_option(app, "--busy-max-ms", cfg.busy_max_ms, "busy-retry backoff cap")
      ->check(CLI::Range(1, 600000));
  add_flag_option(app, "--stats-interval-ms", cfg.stats_interval_ms, "period of the rate log line")
      ->check(CLI::Range(100, 86400000));
  topicflow::add_metrics_options(app, cfg.metrics_port, cfg.metrics_address);
  topicflow::add_endpoint_options(app, cfg.endpoints);
  topicflow::CurveOptions curve;
  topicflow::add_curve_options(app, curve);
  topicflow::add_log_level_option(app, log_level);
  if (auto code = topicflow::parse_command_line(app, argc, argv)) return *code;
  try {
    topicflow::validate_endpoints(cfg.endpoints);
    cfg.security = topicflow::load_security(curve, {.server = true, .broker = true});
  } catch (const std::exception& e) {
    std::cerr << "topicflow-sink: error: " << e.what() << "\n";
    return 2;
  }
  topicflow::init_logging("sink", log_level);
  topicflow::log_security(cfg.security);
  try {
    topicflow::StopSignal stop;
    topicflow::install_signal_handlers(stop);
    topicflow::Sink sink{cfg};
    sink.run(stop);
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  return 0;
}
