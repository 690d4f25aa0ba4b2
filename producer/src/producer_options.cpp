#include <topicflow/config.hpp>
#include <topicflow/producer_options.hpp>

namespace topicflow {

void add_producer_options(CLI::App& app, ProducerConfig& c) {
  add_flag_option(app, "--job", c.job, "job name")->type_name("NAME");
  add_flag_option(app, "--format", c.format, "input format (auto: .jsonl files are JSON Lines)")
      ->check(CLI::IsMember({"auto", "text", "jsonl"}));
  add_bool_flag(app, "--wait", c.wait,
                "follow the job until nothing is pending or running; exit 1 if any topic failed");
  add_flag_option(app, "--progress", c.progress,
                  "with --wait: a bar on a terminal, lines otherwise (auto), or as given")
      ->check(CLI::IsMember({"auto", "bar", "lines", "none"}));
  add_bool_flag(app, "--requeue-failed", c.requeue_failed,
                "with FILE: run the file's failed topics again; without FILE: every failed topic "
                "of --job");
  add_bool_flag(app, "--pause", c.pause,
                "instead of submitting: stop dispatching --job's topics (running ones finish)");
  add_bool_flag(app, "--resume", c.resume, "instead of submitting: dispatch --job's topics again");
  add_bool_flag(app, "--cancel", c.cancel,
                "instead of submitting: every pending or running topic of --job ends cancelled "
                "(workers stop the running ones)");
  add_bool_flag(app, "--delete", c.remove,
                "instead of submitting: remove --job, whose topics must all be finished");
  add_flag_option(app, "--chunk-size", c.chunk_size, "topics per message to the sink")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100000}));
  add_flag_option(app, "--connect-timeout-ms", c.connect_timeout_ms,
                  "give up if the sink does not answer within this")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{86400000}));
  add_flag_option(app, "--ack-timeout-ms", c.ack_timeout_ms,
                  "resend a chunk not acknowledged within this, once, then fail")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{86400000}));
}

}  // namespace topicflow
