#pragma once
// The `topicflow` front door: `topicflow status` (read-only report on a database) and
// `topicflow run` (starts and supervises a whole local system for one input file).
//
// The functions here are the testable core; cli/main.cpp only parses and dispatches. Both
// commands return the process exit status; startup failures throw std::runtime_error with a
// one-line reason (main prints it and exits 1).

#include <topicflow/producer.hpp>
#include <topicflow/shutdown.hpp>
#include <topicflow/sink.hpp>
#include <topicflow/worker.hpp>

#include <CLI/CLI.hpp>

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace topicflow::cli {

// ---- status ---------------------------------------------------------------------------------

struct StatusOptions {
  std::string db = "topicflow.db";
  std::string job;  // empty: every job
  bool json = false;
  int errors = 5;           // most recent errors listed
  bool watch = false;       // --watch: refresh until SIGINT (status_watch)
  int interval_ms = 1000;   // --interval-ms: refresh period of --watch
  bool until_done = false;  // --until-done: --watch returns once nothing is pending or running
};

void add_status_options(CLI::App& app, StatusOptions& options);

// Prints counts per status per job (and totals) and the most recent errors, as text or as one
// JSON object: {"jobs":[{"job","pending","running","completed","failed","total"}...],
// "totals":{...}, "errors":[{"job","key","status","attempts","error","updated_at"}...]}.
// Opens the database read-only; throws std::runtime_error (missing file, not a topicflow DB).
int status_command(const StatusOptions& options, std::ostream& out);

// `topicflow status --watch`: every interval_ms, opens the database read-only, reads the counts
// and the most recent errors, and shows them with the rates measured between refreshes (over
// the last 10 s) and an ETA. On a terminal (`terminal`) the view is redrawn in place (ANSI clear
// + home); otherwise one plain line per refresh, followed by any errors not shown before. A
// missing or not yet initialised database is waited for. Returns 0 when `stop` triggers
// (SIGINT); with until_done, returns once the selected job(s) have topics and none is pending
// or running: 0 if all completed, 1 if some failed (as `topicflow-producer --wait`).
int status_watch(const StatusOptions& options, const StopSignal& stop, std::ostream& out,
                 bool terminal);

// ---- run ------------------------------------------------------------------------------------

struct RunOptions {
  std::string file;
  int workers = 4;
  std::string log_level = "warn";  // for run and its children: quiet, so the bar stays readable
  std::string progress = "auto";
  std::int64_t stop_timeout_ms = 10000;  // SIGTERM -> SIGKILL grace per shutdown step
  // --metrics-port P (0: off): the sink serves metrics on P, the broker on P+1, worker i (1..N)
  // on P+1+i, all on metrics_address.
  int metrics_port = 0;
  std::string metrics_address = "127.0.0.1";

  // The role options run takes, declared by the roles' own add_*_options (one definition each):
  // producer --job, --format; worker --handler, --concurrency, --task-timeout-ms; sink --db and
  // its tuning (--lease-ms goes to the workers too).
  ProducerConfig producer;
  WorkerConfig worker;
  SinkConfig sink;

  // What is passed on to the children ("--batch-max", "500"): --handler, --concurrency and --db
  // always, the others only when given (on the command line or in the environment), so the
  // roles' own defaults stay the defaults. Filled by collect_forwarded(). (The producer's work
  // runs inside `run`, with `producer`.)
  std::vector<std::pair<std::string, std::string>> worker_args;
  std::vector<std::pair<std::string, std::string>> sink_args;
};

// Declares run's options on `app`. After parsing, call collect_forwarded() to fill the
// pass-through lists.
class RunCommandLine {
 public:
  RunCommandLine(CLI::App& app, RunOptions& options);
  void collect_forwarded() const;

 private:
  CLI::App& app_;
  RunOptions& options_;
};

// Checks what run passes on as the children would (the handler spec, the worker's and the
// producer's settings), so a bad value is one error before anything starts or any file is
// created; throws std::invalid_argument with a one-line reason.
void validate_run_options(const RunOptions& options);

// Runs the whole system on private ipc:// endpoints in a temp dir until every topic of the job is
// terminal (or `stop` triggers: 130), prints a summary on `out`, and returns 0 only if every topic
// completed. The binaries are looked up in topicflow_bin_dir().
int run_command(const RunOptions& options, const StopSignal& stop, std::ostream& out);

// ---- keygen ---------------------------------------------------------------------------------

struct KeygenOptions {
  std::vector<std::string> names;  // one key pair per name: NAME.key (secret) and NAME.pub
  std::string dir = ".";
  bool force = false;  // overwrite existing files
};

void add_keygen_options(CLI::App& app, KeygenOptions& options);

// Writes a CURVE key pair per name into options.dir (the .key file mode 0600) and prints each
// public key on `out`. Throws std::runtime_error (a file exists, an unwritable directory).
int keygen_command(const KeygenOptions& options, std::ostream& out);

}  // namespace topicflow::cli
