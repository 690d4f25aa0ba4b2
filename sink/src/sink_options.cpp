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
  add_flag_option(app, "--synchronous", c.synchronous,
                  "full: an fsync per committed batch, acknowledged work survives a power cut; "
                  "normal: fsync at checkpoints only (faster on slow disks, an OS crash may lose "
                  "the last commits)")
      ->check(CLI::IsMember({"full", "normal"}))
      ->type_name("full|normal");
  add_flag_option(app, "--http-port", c.http_port,
                  "serve the HTTP API (/v1), the dashboard (/), /metrics and /healthz on this "
                  "port (0: off)")
      ->check(CLI::Range(0, 65535))
      ->type_name("P");
  add_flag_option(app, "--http-address", c.http_address,
                  "address of the HTTP server; a non-loopback one needs --http-token-file or "
                  "--http-read-only")
      ->type_name("A");
  add_flag_option(app, "--http-token-file", c.http_token_file,
                  "writes (POST, DELETE) need `Authorization: Bearer` with the first line of "
                  "this file")
      ->type_name("FILE");
  add_bool_flag(app, "--http-read-only", c.http_read_only,
                "serve reads only: every POST and DELETE is refused (403)");
  add_flag_option(app, "--http-max-body-bytes", c.http_max_body_bytes,
                  "larger request bodies are refused (413)")
      ->check(CLI::Range(std::int64_t{1024}, std::int64_t{1} << 30))
      ->type_name("N");
  add_flag_option(app, "--metrics-port", c.metrics_port,
                  "the older name of --http-port (metrics and /healthz are served there)")
      ->check(CLI::Range(0, 65535))
      ->type_name("P");
  add_flag_option(app, "--metrics-address", c.metrics_address, "the older name of --http-address")
      ->type_name("A");
}

}  // namespace topicflow
