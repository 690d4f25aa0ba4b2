#include <topicflow/config.hpp>
#include <topicflow/curve.hpp>

#include <algorithm>
#include <cctype>
#include <iostream>

namespace topicflow {

std::string env_name(std::string_view flag) {
  while (!flag.empty() && flag.front() == '-') flag.remove_prefix(1);
  std::string name = "TOPICFLOW_";
  for (char c : flag) {
    name += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return name;
}

CLI::Option* add_bool_flag(CLI::App& app, const std::string& flag, bool& value,
                           const std::string& help) {
  return app.add_flag(flag, value, help)->envname(env_name(flag));
}

void add_endpoint_options(CLI::App& app, Endpoints& e) {
  const char* group = "Endpoints";
  add_flag_option(app, "--frontend", e.frontend,
                  "broker PULL address (producers and the sink push tasks)")
      ->group(group);
  add_flag_option(app, "--backend", e.backend, "broker PUSH address (workers pull tasks)")
      ->group(group);
  add_flag_option(app, "--sink", e.sink, "sink PULL address (all status traffic)")->group(group);
  add_flag_option(app, "--events", e.events, "sink PUB address (progress events)")->group(group);
}

void add_curve_options(CLI::App& app, CurveOptions& c) {
  const char* group = "Security (ZeroMQ CURVE; off unless --curve-secret-key is given)";
  add_flag_option(app, "--curve-secret-key", c.secret_key,
                  "this process's CURVE key pair (a .key file from `topicflow keygen`); turns "
                  "encryption and authentication on")
      ->group(group);
  add_flag_option(app, "--curve-broker-key", c.broker_key,
                  "the broker's public key file (to connect to --frontend/--backend)")
      ->group(group);
  add_flag_option(app, "--curve-sink-key", c.sink_key,
                  "the sink's public key file (to connect to --sink/--events)")
      ->group(group);
  add_flag_option(app, "--curve-authorized", c.authorized,
                  "broker and sink: the clients admitted, a file of public keys or a directory "
                  "of *.pub files")
      ->group(group);
}

void add_log_level_option(CLI::App& app, std::string& level) {
  add_flag_option(app, "--log-level", level, "trace, debug, info, warn, error, critical or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
}

void add_metrics_options(CLI::App& app, int& port, std::string& address) {
  add_flag_option(app, "--metrics-port", port,
                  "serve Prometheus metrics and /healthz on this port (0: off)")
      ->check(CLI::Range(0, 65535));
  add_flag_option(app, "--metrics-address", address, "address of the metrics endpoint");
}

std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForAllHelp&) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::CallForVersion&) {
    std::cout << app.version() << "\n";
    return 0;
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    std::replace(what.begin(), what.end(), '\n', ' ');
    std::cerr << app.get_name() << ": error: " << what << " (see --help)\n";
    return 2;
  }
  return std::nullopt;
}

}  // namespace topicflow
