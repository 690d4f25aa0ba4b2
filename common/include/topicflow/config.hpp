#pragma once
// Command-line and environment configuration shared by every binary. Every flag --some-flag is
// also read from TOPICFLOW_SOME_FLAG (the flag wins). Bad flags exit 2 with a one-line reason.

#include <topicflow/endpoints.hpp>

#include <CLI/CLI.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace topicflow {

struct CurveOptions;  // curve.hpp: the CURVE key files

// "--batch-max" -> "TOPICFLOW_BATCH_MAX"
[[nodiscard]] std::string env_name(std::string_view flag);

// Adds an option whose environment variable follows the naming rule.
template <typename T>
CLI::Option* add_flag_option(CLI::App& app, const std::string& flag, T& value,
                             const std::string& help) {
  // A repeated flag takes its last value, as most Unix tools do (wrappers append overrides).
  return app.add_option(flag, value, help)
      ->envname(env_name(flag))
      ->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
}
CLI::Option* add_bool_flag(CLI::App& app, const std::string& flag, bool& value,
                           const std::string& help);

void add_endpoint_options(CLI::App& app, Endpoints& endpoints);
void add_curve_options(CLI::App& app, CurveOptions& options);
void add_log_level_option(CLI::App& app, std::string& level);
// --metrics-port (0: off) and --metrics-address, as serve_metrics() (metrics.hpp) takes them.
void add_metrics_options(CLI::App& app, int& port, std::string& address);

// Parses argv. Returns an exit code when the process should stop now (0 after --help, 2 after a
// bad flag, with a one-line reason on stderr), nothing when it should go on.
[[nodiscard]] std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv);

}  // namespace topicflow
