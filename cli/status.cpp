// `topicflow status`: counts per status and the most recent errors, read without writing.
#include <topicflow/cli.hpp>
#include <topicflow/client.hpp>
#include <topicflow/clock.hpp>
#include <topicflow/config.hpp>
#include <topicflow/store.hpp>

#include <nlohmann/json.hpp>

#include <poll.h>
#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <ctime>
#include <deque>
#include <filesystem>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <stdexcept>

namespace topicflow::cli {
namespace {

enum class TimeFormat : std::uint8_t { date_time, time };

std::string format_time(std::int64_t ms, TimeFormat format = TimeFormat::date_time) {
  const auto seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::localtime_r(&seconds, &tm);
  char buffer[32];
  const auto n = format == TimeFormat::time
                     ? std::strftime(buffer, sizeof buffer, "%H:%M:%S", &tm)
                     : std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S", &tm);
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

store::JobCounts sum_counts(const std::vector<store::JobCounts>& counts) {
  store::JobCounts totals{"total", {}};
  for (const auto& c : counts) {
    for (std::size_t s = 0; s < totals.by_status.size(); ++s) totals.by_status[s] += c.by_status[s];
  }
  return totals;
}

// The text table: one row per job, a total row when there are several.
void print_table(std::ostream& out, const std::string& db,
                 const std::vector<store::JobCounts>& counts, const store::JobCounts& totals) {
  std::size_t width = 5;
  for (const auto& c : counts) width = std::max(width, std::min<std::size_t>(c.job.size(), 40));
  auto row = [&](const std::string& name, const store::JobCounts& c) {
    out << std::left << std::setw(static_cast<int>(width)) << name << std::right;
    for (const auto count : c.by_status) out << std::setw(11) << count;
    out << std::setw(11) << c.total() << "\n";
  };
  if (counts.empty()) {
    out << "no topics in " << db << "\n";
    return;
  }
  out << std::left << std::setw(static_cast<int>(width)) << "job" << std::right;
  for (auto name : store::kStatusNames) out << std::setw(11) << name;
  out << std::setw(11) << "total"
      << "\n";
  for (const auto& c : counts) row(c.job, c);
  if (counts.size() > 1) row("total", totals);
}

std::string error_line(const store::ErrorRow& e, TimeFormat time_format) {
  return format_time(e.updated_at, time_format) + "  " + e.job + "/" + one_line(e.key, 60) + "  " +
         e.status + " after " + std::to_string(e.attempts) +
         (e.attempts == 1 ? " attempt" : " attempts") + ": " + one_line(e.error);
}

void print_errors(std::ostream& out, const std::vector<store::ErrorRow>& errors) {
  if (errors.empty()) return;
  out << "\nmost recent errors:\n";
  for (const auto& e : errors) out << "  " << error_line(e, TimeFormat::date_time) << "\n";
}

// Completion rates over a sliding window of refreshes.
class Rates {
 public:
  static constexpr std::int64_t kWindowMs = 10000;

  void add(std::int64_t at_ms, std::uint64_t completed, std::uint64_t failed) {
    samples_.push_back({at_ms, completed, failed});
    while (samples_.size() > 2 && at_ms - samples_[1].at_ms >= kWindowMs) samples_.pop_front();
  }
  // Per second over the window; 0 until two refreshes were seen. A count that went down (the
  // database was replaced, failed topics requeued) restarts the measurement.
  [[nodiscard]] double completed() const { return per_second(&Sample::completed); }
  [[nodiscard]] double failed() const { return per_second(&Sample::failed); }
  [[nodiscard]] double done() const { return completed() + failed(); }
  [[nodiscard]] std::int64_t span_ms() const {
    return samples_.size() < 2 ? 0 : samples_.back().at_ms - samples_.front().at_ms;
  }

 private:
  struct Sample {
    std::int64_t at_ms;
    std::uint64_t completed;
    std::uint64_t failed;
  };
  [[nodiscard]] double per_second(std::uint64_t Sample::*field) const {
    if (samples_.size() < 2) return 0.0;
    const auto& a = samples_.front();
    const auto& b = samples_.back();
    if (b.*field < a.*field || b.at_ms <= a.at_ms) return 0.0;
    return static_cast<double>(b.*field - a.*field) * 1000.0 /
           static_cast<double>(b.at_ms - a.at_ms);
  }
  std::deque<Sample> samples_;
};

// What one refresh read.
struct Reading {
  std::vector<store::JobCounts> counts;
  store::JobCounts totals;
  std::vector<store::ErrorRow> errors;
  std::string problem;  // non-empty: nothing could be read, and why
};

Reading read_once(const StatusOptions& o, const std::optional<std::string>& job) {
  Reading r;
  try {
    if (!std::filesystem::exists(o.db)) {
      r.problem = "waiting for the database '" + o.db + "' to be created";
      return r;
    }
    auto db = store::open_read_only(o.db);
    r.counts = store::read_counts(db, job);
    if (job && r.counts.empty()) r.counts.push_back(store::JobCounts{*job, {}});
    if (o.errors > 0) r.errors = store::recent_errors(db, job, o.errors);
  } catch (const std::exception& e) {
    r.problem = e.what();
    r.counts.clear();
    r.errors.clear();
  }
  r.totals = sum_counts(r.counts);
  return r;
}

std::string rate_text(double rate) {
  return rate >= 100 ? fmt::format("{:.0f}", rate) : fmt::format("{:.1f}", rate);
}

// Waits up to `ms` for the stop signal; true if it triggered.
bool wait_for_stop(const StopSignal& stop, std::int64_t ms) {
  const auto until = steady_ms() + ms;
  for (;;) {
    if (stop.triggered()) return true;
    const auto left = until - steady_ms();
    if (left <= 0) return false;
    pollfd item{stop.fd(), POLLIN, 0};
    (void)::poll(&item, 1, static_cast<int>(std::min<std::int64_t>(left, 1000)));  // EINTR: loop
  }
}

}  // namespace

void add_status_options(CLI::App& app, StatusOptions& o) {
  add_flag_option(app, "--db", o.db, "SQLite database to report on (opened read-only)")
      ->type_name("PATH");
  add_flag_option(app, "--job", o.job, "only this job (default: every job)")->type_name("NAME");
  add_bool_flag(app, "--json", o.json, "print one JSON object instead of a table");
  add_flag_option(app, "--errors", o.errors, "how many of the most recent errors to list")
      ->check(CLI::Range(0, 100000));
  auto* watch =
      add_bool_flag(app, "--watch", o.watch,
                    "refresh until Ctrl-C: counts, rates, ETA, latest errors (redrawn on a "
                    "terminal, one line per refresh otherwise)");
  watch->excludes(app.get_option("--json"));
  add_flag_option(app, "--interval-ms", o.interval_ms, "refresh period of --watch")
      ->check(CLI::Range(50, 3600000))
      ->needs(watch);
  add_bool_flag(app, "--until-done", o.until_done,
                "with --watch: exit once nothing is pending or running (0: all completed, 1: some "
                "failed)")
      ->needs(watch);
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
  const auto totals = sum_counts(counts);

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

  print_table(out, o.db, counts, totals);
  print_errors(out, errors);
  return 0;
}

int status_watch(const StatusOptions& o, const StopSignal& stop, std::ostream& out, bool terminal) {
  const std::optional<std::string> job =
      o.job.empty() ? std::nullopt : std::optional<std::string>(o.job);
  Rates rates;
  std::int64_t newest_error_shown = 0;  // plain mode prints each error once
  std::string last_problem;
  for (;;) {
    const auto reading = read_once(o, job);
    const auto& t = reading.totals;
    using store::Status;
    const auto pending = t.count(Status::pending);
    const auto running = t.count(Status::running);
    const auto completed = t.count(Status::completed);
    const auto failed = t.count(Status::failed);
    const bool done = reading.problem.empty() && t.total() > 0 && pending + running == 0;
    if (reading.problem.empty()) rates.add(steady_ms(), completed, failed);
    const double rate = rates.done();
    const auto remaining = pending + running;
    const std::string eta = t.total() == 0   ? std::string("-:--")
                            : remaining == 0 ? std::string("0:00")
                            : rate > 0.0
                                ? ProgressView::format_eta(static_cast<double>(remaining) / rate)
                                : std::string("-:--");
    const auto now = now_ms();

    if (terminal) {
      std::ostringstream view;
      view << "\x1b[H\x1b[2J";  // home, clear screen: one write per refresh, no flicker of partial
                                // frames
      view << "topicflow status  " << o.db << (job ? "  job " + *job : std::string()) << "  "
           << format_time(now, TimeFormat::time) << "  (every "
           << fmt::format("{:.1f}", o.interval_ms / 1000.0) << " s; Ctrl-C quits)\n\n";
      if (!reading.problem.empty()) {
        view << reading.problem << "\n";
      } else {
        print_table(view, o.db, reading.counts, t);
        if (t.total() > 0) {
          wire::Progress p;
          p.pending = pending;
          p.running = running;
          p.completed = completed;
          p.failed = failed;
          view << "\n" << ProgressView::render_bar(p, rate, 30) << "\n";
          view << "rates over the last " << std::max<std::int64_t>(1, rates.span_ms() / 1000)
               << " s: " << rate_text(rates.completed()) << " completed/s, "
               << rate_text(rates.failed()) << " failed/s" << (done ? "  (done)" : "") << "\n";
        }
        print_errors(view, reading.errors);
      }
      out << view.str() << std::flush;
    } else if (!reading.problem.empty()) {
      if (reading.problem != last_problem)
        out << format_time(now, TimeFormat::time) << " " << reading.problem << "\n";
    } else {
      out << fmt::format(
                 "{} pending {} running {} completed {} failed {} total {} | {}/s (completed {}/s, "
                 "failed {}/s) | ETA {}",
                 format_time(now, TimeFormat::time), pending, running, completed, failed, t.total(),
                 rate_text(rate), rate_text(rates.completed()), rate_text(rates.failed()), eta)
          << (done ? " | done" : "") << "\n";
      // Errors not shown yet, oldest first.
      // (reverse iterators, not std::ranges::reverse_view: clang 14, and so clang-tidy, cannot
      // compile libstdc++ 12's views)
      for (auto it = reading.errors.rbegin(); it != reading.errors.rend(); ++it) {
        const auto& error = *it;
        if (error.updated_at > newest_error_shown)
          out << "  error " << error_line(error, TimeFormat::time) << "\n";
      }
      if (!reading.errors.empty())
        newest_error_shown = std::max(newest_error_shown, reading.errors.front().updated_at);
    }
    out << std::flush;
    last_problem = reading.problem;

    if (o.until_done && done) return failed > 0 ? 1 : 0;
    if (wait_for_stop(stop, o.interval_ms)) {
      if (terminal) out << "\n" << std::flush;
      return 0;
    }
  }
}

}  // namespace topicflow::cli
