// topicflow: the front door. `topicflow run FILE` runs a whole local system for one file;
// `topicflow status` reports on a database without writing it.
#include <topicflow/cli.hpp>
#include <topicflow/config.hpp>
#include <topicflow/log.hpp>
#include <topicflow/shutdown.hpp>

#include <unistd.h>

#include <exception>
#include <iostream>

int main(int argc, char** argv) {
  using namespace topicflow;
  cli::RunOptions run;
  cli::StatusOptions status;
  CLI::App app{"topicflow: run topics through workers, with SQLite status written by one sink",
               "topicflow"};
  app.require_subcommand(1);
  add_version_flag(app);
  auto* run_cmd = app.add_subcommand(
      "run", "start a sink, a broker, N workers and a producer for FILE; wait; summarise");
  const cli::RunCommandLine run_line(*run_cmd, run);
  auto* status_cmd =
      app.add_subcommand("status", "counts per status and the most recent errors (read-only)");
  cli::add_status_options(*status_cmd, status);
  add_markdown_flag(*status_cmd);
  cli::KeygenOptions keygen;
  auto* keygen_cmd = app.add_subcommand(
      "keygen",
      "write CURVE key pairs (NAME.key, NAME.pub) for encrypted, authenticated deployments");
  cli::add_keygen_options(*keygen_cmd, keygen);
  add_markdown_flag(*keygen_cmd);
  if (auto code = parse_command_line(app, argc, argv)) return *code;
  try {
    if (status_cmd->parsed() && status.watch) {
      StopSignal stop;
      install_signal_handlers(stop);
      return cli::status_watch(status, stop, std::cout, ::isatty(STDOUT_FILENO) == 1);
    }
    if (status_cmd->parsed()) return cli::status_command(status, std::cout);
    if (keygen_cmd->parsed()) return cli::keygen_command(keygen, std::cout);
    run_line.collect_forwarded();
    init_logging("run", run.log_level);
    StopSignal stop;
    install_signal_handlers(stop);
    return cli::run_command(run, stop, std::cout);
  } catch (const std::exception& e) {
    std::cerr << "topicflow: error: " << e.what() << "\n";
    return 1;
  }
}
