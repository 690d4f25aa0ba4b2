#include <topicflow/config.hpp>
#include <topicflow/wire.hpp>
#include <topicflow/worker_options.hpp>

namespace topicflow {

void add_worker_options(CLI::App& app, WorkerConfig& c) {
  add_flag_option(app, "--handler", c.handler,
                  "what to do with a task: noop, sleep:MIN-MAX, fail:P, sleep:MIN-MAX,fail:P, "
                  "exec:COMMAND or exec-persistent:COMMAND")
      ->type_name("SPEC");
  add_flag_option(app, "--concurrency", c.concurrency,
                  "handlers at once per worker; a task is taken only when a slot is free")
      ->check(CLI::Range(1, 4096));
  add_flag_option(app, "--lease-ms", c.lease_ms,
                  "heartbeats are sent every lease/3 (use the sink's value)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{86400000}));
  add_flag_option(app, "--task-timeout-ms", c.task_timeout_ms,
                  "a task running longer is cancelled (exec: process group killed), a retryable "
                  "failure (0: none)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{86400000}));
  add_flag_option(app, "--shutdown-grace-ms", c.shutdown_grace_ms,
                  "on SIGTERM, wait this long for running tasks, then give them back")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{86400000}));
  add_flag_option(app, "--max-result-bytes", c.max_result_bytes,
                  "larger results are truncated (exec) or fail")
      ->check(
          CLI::Range(std::int64_t{0}, static_cast<std::int64_t>(wire::Limits{}.max_data_bytes)));
  add_flag_option(app, "--flush-ms", c.flush_ms,
                  "reports are sent at most this long after their first update")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{60000}));
  add_flag_option(app, "--id", c.id, "worker id in reports and in the `worker` column")
      ->type_name("ID")
      ->default_str("HOSTNAME-PID");
  add_metrics_options(app, c.metrics_port, c.metrics_address);
}

}  // namespace topicflow
