// `topicflow status`: counts per status and the most recent errors, read without writing.
#include <topicflow/cli.hpp>
#include <topicflow/config.hpp>
#include <topicflow/store.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <iomanip>
#include <ostream>
#include <stdexcept>

namespace topicflow::cli {
namespace {

std::string format_time(std::int64_t ms) {
  const auto seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::localtime_r(&seconds, &tm);
  char buffer[32];
  const auto n = std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S", &tm);
  return {buffer, n};
}

// One line per error: newlines become " | ", long texts are cut.
std::string one_line(std::string_view text, std::size_t max = 160) {
  std::string out;
  for (char c : text) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    if (c == '\n' || c == '\r') {
      if (!out.empty() && out.back() != ' ') out += " | ";
    } else {
      out += c;
    }
  }
  return out;
}

nlohmann::ordered_json counts_json(const std::string& job, const store::JobCounts& c) {
  nlohmann::ordered_json j;
  j["job"] = job;
  for (std::size_t s = 0; s < store::kStatusNames.size(); ++s)
    j[std::string(store::kStatusNames[s])] = c.by_status[s];
  j["total"] = c.total();
  return j;
}

}  // namespace

void add_status_options(CLI::App& app, StatusOptions& o) {
  add_flag_option(app, "--db", o.db, "SQLite database to report on (opened read-only)");
  add_flag_option(app, "--job", o.job, "only this job (default: every job)");
  add_bool_flag(app, "--json", o.json, "print one JSON object instead of a table");
  add_flag_option(app, "--errors", o.errors, "how many of the most recent errors to list")
      ->check(CLI::Range(0, 100000));
}

int status_command(const StatusOptions& o, std::ostream& out) {
  if (!std::filesystem::exists(o.db)) throw std::runtime_error("no database at '" + o.db + "'");
  auto db = store::open_read_only(o.db);
  const std::optional<std::string> job =
      o.job.empty() ? std::nullopt : std::optional<std::string>(o.job);
  auto counts = store::read_counts(db, job);
  if (job && counts.empty())
    counts.push_back(store::JobCounts{*job, {}});  // asked for it: show zeros
  const auto errors =
      o.errors > 0 ? store::recent_errors(db, job, o.errors) : std::vector<store::ErrorRow>{};
  store::JobCounts totals{"total", {}};
  for (const auto& c : counts) {
    for (std::size_t s = 0; s < totals.by_status.size(); ++s) totals.by_status[s] += c.by_status[s];
  }

  if (o.json) {
    nlohmann::ordered_json doc;
    doc["jobs"] = nlohmann::ordered_json::array();
    for (const auto& c : counts) doc["jobs"].push_back(counts_json(c.job, c));
    doc["totals"] = counts_json("total", totals);
    doc["totals"].erase("job");
    doc["errors"] = nlohmann::ordered_json::array();
    for (const auto& e : errors) {
      doc["errors"].push_back({{"job", e.job},
                               {"key", e.key},
                               {"status", e.status},
                               {"attempts", e.attempts},
                               {"error", e.error},
                               {"updated_at", e.updated_at}});
    }
    // Errors come from handlers and may hold anything: never let a stray byte break the report.
    out << doc.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
    return 0;
  }

  std::size_t width = 5;
  for (const auto& c : counts) width = std::max(width, std::min<std::size_t>(c.job.size(), 40));
  auto row = [&](const std::string& name, const store::JobCounts& c) {
    out << std::left << std::setw(static_cast<int>(width)) << name << std::right;
    for (const auto count : c.by_status) out << std::setw(11) << count;
    out << std::setw(11) << c.total() << "\n";
  };
  if (counts.empty()) {
    out << "no topics in " << o.db << "\n";
  } else {
    out << std::left << std::setw(static_cast<int>(width)) << "job" << std::right;
    for (auto name : store::kStatusNames) out << std::setw(11) << name;
    out << std::setw(11) << "total"
        << "\n";
    for (const auto& c : counts) row(c.job, c);
    if (counts.size() > 1) row("total", totals);
  }
  if (!errors.empty()) {
    out << "\nmost recent errors:\n";
    for (const auto& e : errors) {
      out << "  " << format_time(e.updated_at) << "  " << e.job << "/" << one_line(e.key, 60)
          << "  " << e.status << " after " << e.attempts
          << (e.attempts == 1 ? " attempt" : " attempts") << ": " << one_line(e.error) << "\n";
    }
  }
  return 0;
}

}  // namespace topicflow::cli
