#include <topicflow/config.hpp>
#include <topicflow/curve.hpp>

#include <algorithm>
#include <cctype>
#include <iostream>
#include <stdexcept>

namespace topicflow {

std::string_view version() noexcept { return TOPICFLOW_VERSION; }

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
  const std::pair<const char*, std::string*> flags[] = {{"--frontend", &e.frontend},
                                                        {"--backend", &e.backend},
                                                        {"--sink", &e.sink},
                                                        {"--events", &e.events}};
  const char* help[] = {
      "broker PULL address (the sink pushes tasks)", "broker PUSH address (workers pull tasks)",
      "sink PULL address (all status traffic)", "sink PUB address (acks and progress events)"};
  for (std::size_t i = 0; i < std::size(flags); ++i) {
    add_flag_option(app, flags[i].first, *flags[i].second, help[i])
        ->type_name("ENDPOINT")
        ->group(kEndpointsGroup);
  }
}

void add_curve_options(CLI::App& app, CurveOptions& c) {
  add_flag_option(app, "--curve-secret-key", c.secret_key,
                  "all: this process's key pair (a .key file of `topicflow keygen`); turns "
                  "encryption and authentication on")
      ->type_name("FILE")
      ->group(kSecurityGroup);
  add_flag_option(app, "--curve-broker-key", c.broker_key,
                  "sink, worker: the broker's public key (.pub), to connect to "
                  "--frontend/--backend")
      ->type_name("FILE")
      ->group(kSecurityGroup);
  add_flag_option(app, "--curve-sink-key", c.sink_key,
                  "broker, worker, producer: the sink's public key, to connect to --sink/--events")
      ->type_name("FILE")
      ->group(kSecurityGroup);
  add_flag_option(app, "--curve-authorized", c.authorized,
                  "broker, sink: the clients admitted, a directory of *.pub files or a file with "
                  "one public key per line")
      ->type_name("PATH")
      ->group(kSecurityGroup);
}

void add_log_level_option(CLI::App& app, std::string& level) {
  add_flag_option(app, "--log-level", level, "trace, debug, info, warn, error, critical or off")
      ->type_name("LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
}

void add_metrics_options(CLI::App& app, int& port, std::string& address) {
  add_flag_option(app, "--metrics-port", port,
                  "serve Prometheus metrics and /healthz on this port (0: off)")
      ->type_name("PORT")
      ->check(CLI::Range(0, 65535));
  add_flag_option(app, "--metrics-address", address, "address of the metrics endpoint")
      ->type_name("ADDRESS");
}

namespace {

constexpr const char* kMarkdownFlag = "--help-markdown";

// Thrown by --help-markdown's callback, which runs before required options are checked, so the
// table of `topicflow run` needs no FILE. A CLI::Success, so that every parse ends in one place.
class MarkdownRequested : public CLI::Success {
 public:
  MarkdownRequested(const CLI::App& app, std::string which)
      : app_(&app), which_(std::move(which)) {}
  [[nodiscard]] const CLI::App& app() const noexcept { return *app_; }
  [[nodiscard]] const std::string& which() const noexcept { return which_; }

 private:
  const CLI::App* app_;
  std::string which_;
};

bool is_common_group(std::string_view group) {
  return group == kEndpointsGroup || group == kSecurityGroup || group == kLoggingGroup;
}

std::string escape_cell(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

// `--db PATH`, `--format auto\|text\|jsonl`, `--batch-delay-ms MS`, `--wait`.
std::string flag_cell(const CLI::Option& opt) {
  const auto name = opt.get_name();
  if (opt.get_expected_max() == 0 || opt.get_type_name().empty()) return "`" + name + "`";
  const auto full = opt.get_type_name();  // "INT:INT in [1 - 100]", "TEXT:{auto,text}", "PATH"
  const auto colon = full.find(':');
  std::string type = full.substr(0, colon);
  if (colon != std::string::npos && full[colon + 1] == '{') {
    type = full.substr(colon + 2, full.find('}', colon) - colon - 2);  // one of a set: list it
    std::replace(type.begin(), type.end(), ',', '|');
  } else if (type == "INT" || type == "UINT" || type == "FLOAT") {
    type = name.ends_with("-ms") ? "MS" : "N";
  }
  return "`" + name + " " + escape_cell(type) + "`";
}

std::string default_cell(const CLI::Option& opt) {
  if (opt.get_expected_max() == 0) return "off";
  const auto value = opt.get_default_str();
  if (value.empty()) return "–";
  const bool number = value.find_first_not_of("0123456789") == std::string::npos ||
                      (value.size() > 1 && value[0] == '-' &&
                       value.find_first_not_of("0123456789", 1) == std::string::npos);
  return number ? value : "`" + escape_cell(value) + "`";
}

}  // namespace

void add_version_flag(CLI::App& app) {
  app.set_version_flag("--version", app.get_name() + " " + std::string(version()),
                       "print the version and exit");
}

void add_markdown_flag(CLI::App& app) {
  app.add_option_function<std::string>(
         kMarkdownFlag, [&app](const std::string& which) { throw MarkdownRequested(app, which); },
         "print the options as a Markdown table (own or common) and exit")
      ->check(CLI::IsMember({"own", "common"}))
      ->group("");  // hidden: for scripts/readme-flags.sh
}

void add_common_options(CLI::App& app, Endpoints& endpoints, CommonOptions& common) {
  add_endpoint_options(app, endpoints);
  add_curve_options(app, common.curve);
  add_log_level_option(app, common.log_level);
  app.get_option("--log-level")->group(kLoggingGroup);
  add_version_flag(app);
  add_markdown_flag(app);
}

void add_options_subset(CLI::App& app, const std::function<void(CLI::App&)>& add,
                        const std::vector<std::string>& keep) {
  const auto before = app.get_options();
  add(app);
  std::vector<std::string> missing = keep;
  for (auto* opt : app.get_options()) {
    if (std::find(before.begin(), before.end(), opt) != before.end()) continue;
    const auto name = opt->get_name();
    if (auto it = std::find(missing.begin(), missing.end(), name); it != missing.end()) {
      missing.erase(it);
    } else {
      app.remove_option(opt);
    }
  }
  if (!missing.empty()) throw std::logic_error("add_options_subset: no option " + missing.front());
}

std::vector<std::pair<std::string, std::string>> option_args(const CLI::App& app,
                                                             const std::vector<std::string>& flags,
                                                             bool defaults) {
  std::vector<std::pair<std::string, std::string>> args;
  for (const auto& flag : flags) {
    const auto* opt = app.get_option(flag);
    if (opt->count() > 0) {
      args.emplace_back(flag, opt->as<std::string>());
    } else if (defaults) {
      args.emplace_back(flag, opt->get_default_str());
    }
  }
  return args;
}

std::string flags_markdown(const CLI::App& app, std::string_view which) {
  const bool common = which == "common";
  std::string out = "| flag | default | meaning |\n|---|---|---|\n";
  for (const auto* opt : app.get_options()) {
    const auto& group = opt->get_group();
    const auto name = opt->get_name();
    if (group.empty() || opt->get_positional() || name == "--help" || name == "--help-all" ||
        name == "--version" || name == kMarkdownFlag || is_common_group(group) != common) {
      continue;
    }
    out += "| " + flag_cell(*opt) + " | " + default_cell(*opt) + " | " +
           escape_cell(opt->get_description()) + " |\n";
  }
  return out;
}

std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv,
                                      const std::function<void()>& validate) {
  try {
    app.parse(argc, argv);
  } catch (const MarkdownRequested& e) {
    std::cout << flags_markdown(e.app(), e.which());
    return 0;
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForAllHelp&) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::CallForVersion& e) {
    std::cout << e.what() << "\n";
    return 0;
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    std::replace(what.begin(), what.end(), '\n', ' ');
    std::cerr << app.get_name() << ": error: " << what << " (see --help)\n";
    return 2;
  }
  if (validate) {
    try {
      validate();
    } catch (const std::invalid_argument& e) {
      std::cerr << app.get_name() << ": error: " << e.what() << "\n";
      return 2;
    }
  }
  return std::nullopt;
}

}  // namespace topicflow
