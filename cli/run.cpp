// `topicflow run`: a whole local system (sink, broker, workers, producer) for one input file, on
// private ipc:// endpoints, supervised until the job is done.
#include <topicflow/backoff.hpp>
#include <topicflow/cli.hpp>
#include <topicflow/client.hpp>
#include <topicflow/clock.hpp>
#include <topicflow/config.hpp>
#include <topicflow/log.hpp>
#include <topicflow/process.hpp>
#include <topicflow/producer_options.hpp>
#include <topicflow/random_id.hpp>
#include <topicflow/sink_options.hpp>
#include <topicflow/store.hpp>
#include <topicflow/worker_options.hpp>

#include <zmq.hpp>

#include <unistd.h>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <list>
#include <ostream>
#include <sstream>
#include <stdexcept>

namespace topicflow::cli {
namespace {

namespace fs = std::filesystem;

// A child that exits (not killed by a signal) this soon after its first start is misconfigured,
// not unlucky: restarting it would only loop (an unwritable database, a used endpoint), so `run`
// stops instead.
constexpr std::int64_t kStartupGraceMs = 1000;
// A child that ran this long before it died starts its restart backoff from the beginning.
constexpr std::int64_t kHealthyRunMs = 30000;
constexpr std::int64_t kSinkReadyTimeoutMs = 15000;
// Before submitting, wait this long at most for the sink to have heard from every worker.
constexpr std::int64_t kWorkersWaitMs = 500;
// Hello (answered with the job's progress) this often, so a lost event cannot stall the wait.
constexpr std::int64_t kHelloEveryMs = 1000;
constexpr std::int64_t kPollMs = 100;

// A private directory for the ipc:// endpoints, removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::string base = "/tmp";
    if (const char* t = std::getenv("TMPDIR"); t != nullptr && *t != '\0') base = t;
    // ipc:// paths are limited to ~107 bytes (sun_path); a deep TMPDIR falls back to /tmp.
    if (base.size() > 60) base = "/tmp";
    std::string pattern = base + "/topicflow-run-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::runtime_error("cannot create a temporary directory in " + base + ": " +
                               std::strerror(errno));
    }
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

// One supervised role process.
struct Child {
  std::string name;  // "sink", "broker", "worker 3", "producer"
  std::vector<std::string> argv;
  bool restartable = true;
  ChildProcess process;
  std::int64_t first_started_ms = 0;
  std::int64_t started_ms = 0;
  std::optional<std::int64_t> restart_at;
  unsigned crashes = 0;  // consecutive deaths, for the backoff
  unsigned restarts = 0;
  Backoff backoff{200, 10000};
};

class Supervisor {
 public:
  Child& add(std::string name, std::vector<std::string> argv, bool restartable) {
    auto& c = children_.emplace_back();
    c.name = std::move(name);
    c.argv = std::move(argv);
    c.restartable = restartable;
    return c;
  }

  void start(Child& c) {
    SpawnOptions options;
    options.new_process_group =
        true;  // a terminal's Ctrl-C reaches `run` only; it stops them in order
    options.die_with_parent = true;  // and nothing outlives a `run` killed with SIGKILL
    options.stdin_null = c.name != "producer";
    // A local run uses private ipc:// endpoints without CURVE (run's own client has no keys):
    // CURVE settings meant for a deployment must not leak into its children.
    for (const char* flag :
         {"--curve-secret-key", "--curve-broker-key", "--curve-sink-key", "--curve-authorized"}) {
      options.env.emplace_back(env_name(flag), "");
    }
    c.process = ChildProcess(c.argv, options);
    c.started_ms = steady_ms();
    if (c.first_started_ms == 0) c.first_started_ms = c.started_ms;
    c.restart_at.reset();
    spdlog::debug("started {} (pid {}): {}", c.name, c.process.pid(), join(c.argv));
  }

  // Reaps the restartable children that died, restarts those whose backoff has passed. Returns
  // (reason, exit status) when one cannot usefully be restarted.
  std::optional<std::pair<std::string, int>> supervise() {
    const auto now = steady_ms();
    for (auto& c : children_) {
      if (!c.restartable || c.first_started_ms == 0) continue;
      if (c.restart_at) {
        if (now >= *c.restart_at) {
          try {
            start(c);
            ++c.restarts;
          } catch (const std::exception& e) {
            return std::make_pair("cannot restart " + c.name + ": " + e.what(), 1);
          }
        }
        continue;
      }
      const auto status = c.process.poll_exit();
      if (!status) continue;
      const auto pid = c.process.pid();
      if (!status->signaled() && status->code == 2) {
        return std::make_pair(c.name + " (pid " + std::to_string(pid) + ") rejected its options",
                              2);
      }
      if (!status->signaled() && c.restarts == 0 && now - c.first_started_ms < kStartupGraceMs) {
        return std::make_pair(c.name + " (pid " + std::to_string(pid) + ") exited with " +
                                  status->describe() + " at startup",
                              1);
      }
      if (now - c.started_ms >= kHealthyRunMs) c.crashes = 0;
      const auto delay = std::max<std::int64_t>(50, c.backoff.delay(c.crashes++));
      spdlog::warn("{} (pid {}) exited with {}; restarting in {} ms", c.name, pid,
                   status->describe(), delay);
      c.restart_at = now + delay;
    }
    return std::nullopt;
  }

  // SIGTERM to every child in `group` at once, then SIGKILL to those still running after `grace`.
  void stop(const std::vector<Child*>& group, std::chrono::milliseconds grace) {
    for (auto* c : group) c->process.terminate(SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + grace;
    for (auto* c : group) {
      if (!c->process.running()) continue;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (c->process.wait_for(std::max(left, std::chrono::milliseconds(0)))) continue;
      spdlog::warn("{} (pid {}) did not stop within {} ms; killing it", c->name, c->process.pid(),
                   grace.count());
      c->process.stop(SIGKILL, std::chrono::milliseconds(2000));
    }
    for (auto* c : group) c->restart_at.reset();
  }

  std::list<Child>& children() noexcept { return children_; }

  static std::string join(const std::vector<std::string>& argv) {
    std::string s;
    for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
    return s;
  }

 private:
  std::list<Child> children_;  // stable addresses
};

void check_db_path(const std::string& db) {
  std::error_code ec;
  const fs::path path(db);
  if (fs::exists(path, ec)) {
    if (::access(db.c_str(), R_OK | W_OK) != 0) {
      throw std::runtime_error("cannot use --db '" + db + "': " + std::strerror(errno));
    }
    return;
  }
  auto dir = path.parent_path();
  if (dir.empty()) dir = ".";
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    throw std::runtime_error("cannot use --db '" + db + "': " + dir.string() + ": " +
                             std::strerror(errno));
  }
}

std::string find_binary(const std::string& dir, const std::string& name) {
  auto path = dir + "/" + name;
  if (::access(path.c_str(), X_OK) != 0) {
    throw std::runtime_error("cannot find " + name + " in " + dir +
                             " (set TOPICFLOW_BIN_DIR to the directory of the topicflow binaries)");
  }
  return path;
}

std::vector<std::string> role_argv(const std::string& binary, const Endpoints& e,
                                   const std::string& log_level) {
  return {binary, "--frontend", e.frontend, "--backend",   e.backend, "--sink",
          e.sink, "--events",   e.events,   "--log-level", log_level};
}

void append(std::vector<std::string>& argv,
            const std::vector<std::pair<std::string, std::string>>& args) {
  for (const auto& [flag, value] : args) {
    argv.push_back(flag);
    argv.push_back(value);
  }
}

std::string format_rate(double value) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(value >= 100 ? 0 : 1);
  s << value;
  return s.str();
}

}  // namespace

RunCommandLine::RunCommandLine(CLI::App& app, RunOptions& o) : app_(app), options_(o) {
  app.add_option("FILE", o.file,
                 "topics: text (one per line) or JSON Lines (.jsonl: key + payload); - for stdin")
      ->required()
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            if (value == "-" || (fs::is_regular_file(value) && ::access(value.c_str(), R_OK) == 0))
              return {};
            return "cannot read '" + value + "'";
          },
          "FILE"));
  add_flag_option(app, "--workers", o.workers, "worker processes")->check(CLI::Range(1, 1024));
  // The role options run passes on, from the roles' own definitions; run's own options that
  // share a name with one they leave out (--metrics-port) come after them.
  add_options_subset(app, [&o](CLI::App& a) { add_producer_options(a, o.producer); },
                     {"--job", "--format"});
  add_options_subset(app, [&o](CLI::App& a) { add_worker_options(a, o.worker); },
                     {"--handler", "--concurrency", "--task-timeout-ms"});
  // --lease-ms goes to the workers too (they heartbeat every lease/3).
  add_options_subset(app, [&o](CLI::App& a) { add_sink_options(a, o.sink); },
                     {"--db", "--batch-max", "--batch-delay-ms", "--lease-ms", "--max-attempts",
                      "--retry-base-ms", "--retry-max-ms", "--dispatch-timeout-ms"});
  add_flag_option(app, "--progress", o.progress, "a bar on a terminal, lines otherwise (auto)")
      ->check(CLI::IsMember({"auto", "bar", "lines", "none"}));
  add_flag_option(app, "--stop-timeout-ms", o.stop_timeout_ms,
                  "at shutdown, SIGKILL a child still running after this")
      ->check(CLI::Range(0, 3600000));
  add_log_level_option(app, o.log_level);
  app.get_option("--log-level")->description("the log level of run and its children");
  add_flag_option(app, "--metrics-port", o.metrics_port,
                  "Prometheus metrics and /healthz of every child: the sink on this port, the "
                  "broker on +1, worker i on +1+i (printed at start; a restarted child gets its "
                  "port back; 0: off)")
      ->type_name("PORT")
      ->check(CLI::Range(0, 65535));
  add_flag_option(app, "--metrics-address", o.metrics_address, "address of the metrics endpoints")
      ->type_name("ADDRESS");
  app.callback([&o] {
    if (o.metrics_port > 0 && o.metrics_port + 1 + o.workers > 65535) {
      throw CLI::ValidationError(
          "--metrics-port", "the last worker's port " +
                                std::to_string(o.metrics_port + 1 + o.workers) + " is above 65535");
    }
  });
  add_markdown_flag(app);
}

void RunCommandLine::collect_forwarded() const {
  auto& o = options_;
  o.producer_args = option_args(app_, {"--job", "--format"}, /*defaults=*/true);
  o.worker_args = option_args(app_, {"--handler", "--concurrency"}, /*defaults=*/true);
  for (auto& arg : option_args(app_, {"--lease-ms", "--task-timeout-ms"}))
    o.worker_args.push_back(std::move(arg));
  o.sink_args = option_args(app_, {"--db"}, /*defaults=*/true);
  for (auto& arg :
       option_args(app_, {"--batch-max", "--batch-delay-ms", "--lease-ms", "--max-attempts",
                          "--retry-base-ms", "--retry-max-ms", "--dispatch-timeout-ms"})) {
    o.sink_args.push_back(std::move(arg));
  }
  o.worker.lease_ms = o.sink.lease_ms;
}

int run_command(const RunOptions& o, const StopSignal& stop, std::ostream& out) {
  const auto started_ms = steady_ms();
  check_db_path(o.sink.db);
  const auto bin = topicflow_bin_dir();
  const auto sink_bin = find_binary(bin, "topicflow-sink");
  const auto broker_bin = find_binary(bin, "topicflow-broker");
  const auto worker_bin = find_binary(bin, "topicflow-worker");
  const auto producer_bin = find_binary(bin, "topicflow-producer");
  const auto progress_mode = ProgressView::parse_mode(o.progress);

  TempDir dir;
  Endpoints endpoints;
  endpoints.frontend = "ipc://" + dir.path() + "/frontend";
  endpoints.backend = "ipc://" + dir.path() + "/backend";
  endpoints.sink = "ipc://" + dir.path() + "/sink";
  endpoints.events = "ipc://" + dir.path() + "/events";

  // Metrics: one port per role, fixed for the run (a restarted child gets its port back).
  const auto metrics_args = [&](int offset) -> std::vector<std::pair<std::string, std::string>> {
    if (o.metrics_port <= 0) return {};
    return {{"--metrics-port", std::to_string(o.metrics_port + offset)},
            {"--metrics-address", o.metrics_address}};
  };
  if (o.metrics_port > 0) {
    const auto url = "http://" + o.metrics_address + ":";
    out << "metrics: sink " << url << o.metrics_port << "/metrics, broker " << url
        << o.metrics_port + 1 << "/metrics, workers " << url << o.metrics_port + 2
        << (o.workers > 1 ? ".." + std::to_string(o.metrics_port + 1 + o.workers) : std::string())
        << "/metrics" << std::endl;
  }

  Supervisor sup;
  auto sink_argv = role_argv(sink_bin, endpoints, o.log_level);
  append(sink_argv, o.sink_args);
  append(sink_argv, metrics_args(0));
  Child& sink = sup.add("sink", std::move(sink_argv), true);
  auto broker_argv = role_argv(broker_bin, endpoints, o.log_level);
  append(broker_argv, metrics_args(1));
  Child& broker = sup.add("broker", std::move(broker_argv), true);
  std::vector<Child*> workers;
  for (int i = 1; i <= o.workers; ++i) {
    auto argv = role_argv(worker_bin, endpoints, o.log_level);
    append(argv, o.worker_args);
    append(argv, metrics_args(1 + i));
    workers.push_back(&sup.add("worker " + std::to_string(i), std::move(argv), true));
  }
  auto producer_argv = role_argv(producer_bin, endpoints, o.log_level);
  producer_argv.insert(producer_argv.begin() + 1, o.file);
  append(producer_argv, o.producer_args);
  Child& producer = sup.add("producer", std::move(producer_argv), false);

  std::optional<std::pair<std::string, int>> fatal;
  bool interrupted = false;
  bool finished = false;
  std::optional<wire::Progress> last;
  std::optional<wire::Progress> baseline;
  ProgressView view(progress_mode);
  {
    zmq::context_t ctx(1);
    SinkClient client(ctx, endpoints, random_id(), o.producer.job);
    try {
      sup.start(sink);
      sup.start(broker);
      for (auto* w : workers) sup.start(*w);
    } catch (const std::exception& e) {
      fatal = std::make_pair(std::string(e.what()), 1);
    }

    // 1. The sink answers: from here on both directions work (see client.hpp's handshake).
    const auto ready_deadline = steady_ms() + kSinkReadyTimeoutMs;
    bool ready = false;
    while (!fatal && !ready) {
      if (stop.triggered()) {
        interrupted = true;
        break;
      }
      if ((fatal = sup.supervise())) break;
      try {
        ready = client.handshake(std::chrono::milliseconds(300), stop);
        if (!ready) interrupted = true;
        if (!ready) break;
      } catch (const std::runtime_error&) {
        if (steady_ms() > ready_deadline) {
          fatal = std::make_pair(
              "the sink did not answer within " + std::to_string(kSinkReadyTimeoutMs / 1000) + " s",
              1);
        }
      }
    }

    // 2. Give the workers a moment to connect, so the first tasks are shared among them.
    const auto workers_deadline = steady_ms() + kWorkersWaitMs;
    while (ready && !fatal && !interrupted && steady_ms() < workers_deadline) {
      if (stop.triggered()) {
        interrupted = true;
        break;
      }
      if ((fatal = sup.supervise())) break;
      auto event = client.next_event(std::chrono::milliseconds(kPollMs), stop);
      if (const auto* p = event ? std::get_if<wire::Progress>(&*event) : nullptr) {
        last = *p;
        if (p->workers >= static_cast<std::uint64_t>(o.workers)) break;
      }
    }
    baseline = last;

    // 3. Submit, and follow the job until nothing is pending or running.
    if (ready && !fatal && !interrupted) {
      try {
        sup.start(producer);
      } catch (const std::exception& e) {
        fatal = std::make_pair(std::string(e.what()), 1);
      }
    }
    std::optional<std::int64_t>
        producer_done_ms;  // sink wall clock: later progress is final-capable
    std::int64_t next_hello = 0;
    const wire::Message hello = wire::Hello{client.client_id(), o.producer.job};
    while (ready && !fatal && !interrupted) {
      if (stop.triggered()) {
        interrupted = true;
        break;
      }
      if ((fatal = sup.supervise())) break;
      if (!producer_done_ms) {
        if (auto status = producer.process.poll_exit()) {
          if (!status->success()) {
            fatal = std::make_pair("producer (pid " + std::to_string(producer.process.pid()) +
                                       ") exited with " + status->describe(),
                                   status->shell_code());
            break;
          }
          // Exit 0: every chunk was acknowledged, i.e. registered in the database. A progress
          // event computed before that moment may still sit in our queue; it must not end the wait.
          producer_done_ms = now_ms();
          next_hello = 0;
        }
      }
      const auto now = steady_ms();
      if (now >= next_hello) {
        (void)client.try_send(hello);
        next_hello = now + kHelloEveryMs;
      }
      auto event = client.next_event(std::chrono::milliseconds(kPollMs), stop);
      const auto* p = event ? std::get_if<wire::Progress>(&*event) : nullptr;
      if (p == nullptr) continue;
      last = *p;
      if (producer_done_ms && p->time_ms >= *producer_done_ms && p->pending == 0 &&
          p->running == 0) {
        view.finish(*p);
        finished = true;
        break;
      }
      if (p->pending + p->running + p->completed + p->failed > 0)
        view.update(*p);  // not "0/0" before the first chunk
    }
    if (!finished && last && progress_mode != ProgressView::Mode::none) view.finish(*last);
  }

  // 4. Stop in order: nothing new, then the workers (they report or release what they hold),
  // the broker, and the sink last, so it commits everything it was sent.
  const auto grace = std::chrono::milliseconds(o.stop_timeout_ms);
  sup.stop({&producer}, grace);
  sup.stop(workers, grace);
  sup.stop({&broker}, grace);
  sup.stop({&sink}, grace);
  const auto wall_ms = steady_ms() - started_ms;

  if (fatal) {
    std::cerr << "topicflow: error: " << fatal->first << "\n";
    return fatal->second;
  }

  // 5. The summary, from the database itself (the sink has exited: everything is committed).
  std::optional<store::JobCounts> counts;
  try {
    if (fs::exists(o.sink.db)) {
      auto db = store::open_read_only(o.sink.db);
      auto all = store::read_counts(db, o.producer.job);
      counts = all.empty() ? store::JobCounts{o.producer.job, {}} : all.front();
    }
  } catch (const std::exception& e) {
    spdlog::error("cannot read the final counts from {}: {}", o.sink.db, e.what());
  }
  if (!counts && last) {
    counts = store::JobCounts{o.producer.job,
                              {last->pending, last->running, last->completed, last->failed}};
  }
  std::uint64_t restarts = 0;
  std::string restarted;
  for (auto& c : sup.children()) {
    if (c.restarts == 0) continue;
    restarts += c.restarts;
    restarted += (restarted.empty() ? "" : ", ") + c.name + " x" + std::to_string(c.restarts);
  }

  const double seconds = static_cast<double>(std::max<std::int64_t>(wall_ms, 1)) / 1000.0;
  if (counts) {
    const auto done =
        counts->count(store::Status::completed) + counts->count(store::Status::failed);
    const auto before = baseline ? baseline->completed + baseline->failed : 0;
    const auto done_now = done >= before ? done - before : 0;
    out << "job " << o.producer.job << ": " << counts->count(store::Status::completed)
        << " completed, " << counts->count(store::Status::failed) << " failed, "
        << counts->count(store::Status::pending) << " pending, "
        << counts->count(store::Status::running) << " running (" << counts->total() << " topics)\n";
    out << "wall time " << format_rate(seconds) << " s, " << done_now
        << " topics finished in this run (" << format_rate(static_cast<double>(done_now) / seconds)
        << " topics/s)\n";
  }
  if (last) {
    out << "sink: " << last->batches << " batches committed, " << last->busy_retries
        << " busy retries, " << last->redelivered << " redelivered, " << last->retried
        << " retried\n";
  }
  if (restarts > 0) out << "restarts: " << restarted << "\n";
  out.flush();

  if (interrupted) return 130;
  if (!counts) return 1;
  return counts->total() == counts->count(store::Status::completed) ? 0 : 1;
}

}  // namespace topicflow::cli
