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

void validate_endpoint(std::string_view flag, std::string_view endpoint) {
  auto bad = [&](std::string_view why) {
    throw std::invalid_argument(std::string(flag) + " '" + std::string(endpoint) +
                                "': " + std::string(why));
  };
  if (endpoint.starts_with("tcp://")) {
    auto rest = endpoint.substr(6);
    auto colon = rest.rfind(':');
    if (colon == std::string_view::npos || colon == 0) bad("expected tcp://HOST:PORT");
    auto port = rest.substr(colon + 1);
    if (port.empty()) bad("missing port");
    if (port != "*" && !std::all_of(port.begin(), port.end(), [](char c) {
          return std::isdigit(static_cast<unsigned char>(c));
        })) {
      bad("port is not a number");
    }
    if (port != "*" && (port.size() > 5 || std::stoi(std::string(port)) > 65535))
      bad("port out of range");
  } else if (endpoint.starts_with("ipc://")) {
    if (endpoint.size() == 6) bad("missing path");
  } else if (endpoint.starts_with("inproc://")) {
    if (endpoint.size() == 9) bad("missing name");
  } else {
    bad("expected tcp://HOST:PORT, ipc://PATH or inproc://NAME");
  }
}

void validate_endpoints(const Endpoints& e) {
  validate_endpoint("--frontend", e.frontend);
  validate_endpoint("--backend", e.backend);
  validate_endpoint("--sink", e.sink);
  validate_endpoint("--events", e.events);
}

}  // namespace topicflow
