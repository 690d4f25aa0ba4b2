#include <topicflow/config.hpp>
#include <topicflow/sink_options.hpp>

namespace topicflow {

void add_sink_options(CLI::App& app, SinkConfig& c) {
  add_flag_option(app, "--db", c.db,
                  "SQLite file (created if missing; WAL); must be on a local filesystem")
      ->type_name("PATH");
  add_flag_option(app, "--batch-max", c.batch_max, "commit when this many updates are buffered")
      ->check(CLI::Range(1, 1000000));
  add_flag_option(app, "--batch-delay-ms", c.batch_delay_ms,
                  "commit at most this long after the first buffered update")
      ->check(CLI::Range(0, 60000));
  add_flag_option(app, "--lease-ms", c.lease_ms,
                  "a running topic without heartbeat for this long is redelivered")
      ->check(CLI::Range(100, 86400000));
  add_flag_option(app, "--max-attempts", c.max_attempts, "deliveries per topic before it is failed")
      ->check(CLI::Range(1, 1000));
  add_flag_option(app, "--retry-base-ms", c.retry_base_ms,
                  "backoff cap of the first retry (doubles per retry, full jitter)")
      ->check(CLI::Range(0, 86400000));
  add_flag_option(app, "--retry-max-ms", c.retry_max_ms, "retry backoff cap")
      ->check(CLI::Range(0, 86400000));
  add_flag_option(app, "--dispatch-timeout-ms", c.dispatch_timeout_ms,
                  "a task handed to the broker and not started within this is sent again")
      ->check(CLI::Range(100, 86400000));
  add_flag_option(app, "--dispatch-window", c.dispatch_window,
                  "at most this many tasks in transit (the sink keeps 1 per worker slot, more "
                  "for fast tasks)")
      ->check(CLI::Range(1, 1000000));
  add_flag_option(app, "--buffer-max", c.buffer_max,
                  "updates held while the database is busy before the sink stops reading")
      ->check(CLI::Range(1, 10000000));
  add_flag_option(app, "--busy-base-ms", c.busy_base_ms,
                  "backoff cap of the first commit retried on a busy database")
      ->check(CLI::Range(1, 60000));
  add_flag_option(app, "--busy-max-ms", c.busy_max_ms, "backoff cap of busy retries")
      ->check(CLI::Range(1, 600000));
  add_flag_option(app, "--stats-interval-ms", c.stats_interval_ms, "period of the rate log line")
      ->check(CLI::Range(100, 86400000));
  add_metrics_options(app, c.metrics_port, c.metrics_address);
}

}  // namespace topicflow
