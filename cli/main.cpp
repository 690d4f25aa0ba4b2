// topicflow: the front door. `topicflow run FILE` runs a whole local system for one file;
// `topicflow status` reports on a database without writing it; `topicflow keygen` writes CURVE
// keys.
#include <topicflow/cli.hpp>
#include <topicflow/config.hpp>
#include <topicflow/log.hpp>
#include <topicflow/shutdown.hpp>

#include <unistd.h>

#include <exception>
#include <iostream>
#include <optional>
#include <string>

namespace {

// CLI11 says "A subcommand is required" for `topicflow frobnicate` (it takes the word for an
// extra argument): name the problem and the commands instead. Exit code 2, as for a bad flag.
std::optional<int> check_command(const CLI::App& app, int argc, char** argv) {
  std::string commands;
  bool known = false;
  const std::string first = argc > 1 ? argv[1] : "";
  for (const auto* sub : app.get_subcommands({})) {
    commands += (commands.empty() ? "" : ", ") + sub->get_name();
    known = known || sub->get_name() == first;
  }
  if (argc < 2) {
    std::cerr << "topicflow: error: a command is required: " << commands << " (see --help)\n";
    return 2;
  }
  if (known || first.starts_with("-")) return std::nullopt;  // --help, --version: CLI11's
  std::cerr << "topicflow: error: unknown command '" << first << "'; the commands are " << commands
            << " (see --help)\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace topicflow;
  cli::RunOptions run;
  cli::StatusOptions status;
  cli::KeygenOptions keygen;
  CLI::App app{"topicflow: run topics through workers, with SQLite status written by one sink",
               "topicflow"};
  app.require_subcommand(1);
  add_version_flag(app);
  auto* run_cmd = app.add_subcommand(
      "run", "start a sink, a broker and N workers for FILE, submit it, follow it, summarise");
  const cli::RunCommandLine run_line(*run_cmd, run);
  auto* status_cmd =
      app.add_subcommand("status", "counts per status and the most recent errors (read-only)");
  cli::add_status_options(*status_cmd, status);
  add_markdown_flag(*status_cmd);
  auto* keygen_cmd = app.add_subcommand(
      "keygen",
      "write CURVE key pairs (NAME.key, NAME.pub) for encrypted, authenticated deployments");
  cli::add_keygen_options(*keygen_cmd, keygen);
  add_markdown_flag(*keygen_cmd);
  if (auto code = check_command(app, argc, argv)) return *code;
  // `run` checks what it passes on here: a bad --handler is one line and exit 2, before any
  // child starts or any file is created.
  if (auto code = parse_command_line(app, argc, argv, [&] {
        if (!run_cmd->parsed()) return;
        run_line.collect_forwarded();
        cli::validate_run_options(run);
      })) {
    return *code;
  }
  try {
    if (status_cmd->parsed() && status.watch) {
      StopSignal stop;
      install_signal_handlers(stop);
      return cli::status_watch(status, stop, std::cout, ::isatty(STDOUT_FILENO) == 1);
    }
    if (status_cmd->parsed()) return cli::status_command(status, std::cout);
    if (keygen_cmd->parsed()) return cli::keygen_command(keygen, std::cout);
    init_logging("run", run.log_level);
    StopSignal stop;
    install_signal_handlers(stop);
    return cli::run_command(run, stop, std::cout);
  } catch (const std::exception& e) {
    std::cerr << "topicflow: error: " << e.what() << "\n";
    return 1;
  }
}
