// `topicflow run`'s command line: its own options, and the role options it passes on, taken from
// the roles' own definitions (add_*_options) rather than declared again.
#include <topicflow/cli.hpp>
#include <topicflow/config.hpp>
#include <topicflow/handler.hpp>
#include <topicflow/producer_options.hpp>
#include <topicflow/run_worker.hpp>
#include <topicflow/sink_options.hpp>
#include <topicflow/worker_options.hpp>

#include <unistd.h>
#include <filesystem>
#include <string>
#include <utility>

namespace topicflow::cli {

namespace fs = std::filesystem;

RunCommandLine::RunCommandLine(CLI::App& app, RunOptions& o) : app_(app), options_(o) {
  app.add_option("FILE", o.file,
                 "topics: text (one per line) or JSON Lines (.jsonl: key + payload); - for stdin")
      ->required()
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            if (value == "-" || (fs::is_regular_file(value) && ::access(value.c_str(), R_OK) == 0))
              return {};
            return "cannot read '" + value + "'";
          },
          "FILE"));
  add_flag_option(app, "--workers", o.workers, "worker processes")->check(CLI::Range(1, 1024));
  // The role options run passes on, from the roles' own definitions; run's own options that
  // share a name with one they leave out (--metrics-port) come after them.
  add_options_subset(app, [&o](CLI::App& a) { add_producer_options(a, o.producer); },
                     {"--job", "--format"});
  add_options_subset(app, [&o](CLI::App& a) { add_worker_options(a, o.worker); },
                     {"--handler", "--concurrency", "--task-timeout-ms"});
  // --lease-ms goes to the workers too (they heartbeat every lease/3).
  add_options_subset(app, [&o](CLI::App& a) { add_sink_options(a, o.sink); },
                     {"--db", "--batch-max", "--batch-delay-ms", "--lease-ms", "--max-attempts",
                      "--retry-base-ms", "--retry-max-ms", "--dispatch-timeout-ms", "--http-port"});
  add_flag_option(app, "--progress", o.progress, "a bar on a terminal, lines otherwise (auto)")
      ->check(CLI::IsMember({"auto", "bar", "lines", "none"}));
  add_flag_option(app, "--stop-timeout-ms", o.stop_timeout_ms,
                  "at shutdown, SIGKILL a child still running after this")
      ->check(CLI::Range(0, 3600000));
  add_log_level_option(app, o.log_level);
  app.get_option("--log-level")->description("the log level of run and its children");
  add_flag_option(app, "--metrics-port", o.metrics_port,
                  "Prometheus metrics and /healthz of every child: the sink on this port, the "
                  "broker on +1, worker i on +1+i (printed at start; a restarted child gets its "
                  "port back; 0: off)")
      ->type_name("PORT")
      ->check(CLI::Range(0, 65535));
  add_flag_option(app, "--metrics-address", o.metrics_address, "address of the metrics endpoints")
      ->type_name("ADDRESS");
  app.callback([&o] {
    if (o.sink.http_port > 0 && o.metrics_port > 0 && o.sink.http_port >= o.metrics_port &&
        o.sink.http_port <= o.metrics_port + 1 + o.workers) {
      throw CLI::ValidationError("--http-port", "is one of the --metrics-port range's ports");
    }
    if (o.metrics_port > 0 && o.metrics_port + 1 + o.workers > 65535) {
      throw CLI::ValidationError(
          "--metrics-port", "the last worker's port " +
                                std::to_string(o.metrics_port + 1 + o.workers) + " is above 65535");
    }
  });
  add_markdown_flag(app);
}

void RunCommandLine::collect_forwarded() const {
  auto& o = options_;
  o.worker_args = option_args(app_, {"--handler", "--concurrency"}, /*defaults=*/true);
  for (auto& arg : option_args(app_, {"--lease-ms", "--task-timeout-ms"}))
    o.worker_args.push_back(std::move(arg));
  o.sink_args = option_args(app_, {"--db"}, /*defaults=*/true);
  for (auto& arg : option_args(
           app_, {"--batch-max", "--batch-delay-ms", "--lease-ms", "--max-attempts",
                  "--retry-base-ms", "--retry-max-ms", "--dispatch-timeout-ms", "--http-port"})) {
    o.sink_args.push_back(std::move(arg));
  }
  o.worker.lease_ms = o.sink.lease_ms;
}

void validate_run_options(const RunOptions& o) {
  (void)make_handler(o.worker.handler, handler_options(o.worker));
  check_worker_config(o.worker);
  auto producer = o.producer;
  producer.file = o.file;
  (void)Producer(producer);
}

}  // namespace topicflow::cli
