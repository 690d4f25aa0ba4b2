// `topicflow run`: a whole local system (sink, broker, workers, producer) for one input file, on
// private ipc:// endpoints, supervised until the job is done. The phases of a run are the
// member functions of RunSession, in the order run() calls them; the children are the
// Supervisor's (supervisor.hpp), and the job is followed as `topicflow-producer --wait` does
// (follow_job in client.hpp).
#include <topicflow/cli.hpp>
#include <topicflow/client.hpp>
#include <topicflow/clock.hpp>
#include <topicflow/config.hpp>
#include <topicflow/log.hpp>
#include <topicflow/process.hpp>
#include <topicflow/random_id.hpp>
#include <topicflow/store.hpp>
#include <topicflow/supervisor.hpp>

#include <zmq.hpp>

#include <unistd.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <ostream>
#include <sstream>
#include <stdexcept>

namespace topicflow::cli {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kSinkReadyTimeoutMs = 15000;
// Before submitting, wait this long at most for the sink to have heard from every worker.
constexpr std::int64_t kWorkersWaitMs = 500;
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

// The role binaries, next to this one (or in $TOPICFLOW_BIN_DIR).
struct Binaries {
  std::string sink, broker, worker, producer;

  static Binaries find() {
    const auto dir = topicflow_bin_dir();
    const auto one = [&](const std::string& name) {
      auto path = dir + "/" + name;
      if (::access(path.c_str(), X_OK) != 0) {
        throw std::runtime_error(
            "cannot find " + name + " in " + dir +
            " (set TOPICFLOW_BIN_DIR to the directory of the topicflow binaries)");
      }
      return path;
    };
    return {one("topicflow-sink"), one("topicflow-broker"), one("topicflow-worker"),
            one("topicflow-producer")};
  }
};

Endpoints private_endpoints(const TempDir& dir) {
  Endpoints e;
  e.frontend = "ipc://" + dir.path() + "/frontend";
  e.backend = "ipc://" + dir.path() + "/backend";
  e.sink = "ipc://" + dir.path() + "/sink";
  e.events = "ipc://" + dir.path() + "/events";
  return e;
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

// How every child is started: in its own process group (a terminal's Ctrl-C reaches `run`
// only, which stops them in order), killed with `run`, without CURVE.
SpawnOptions child_options(bool reads_stdin) {
  SpawnOptions options;
  options.new_process_group = true;
  options.die_with_parent = true;  // nothing outlives a `run` killed with SIGKILL
  options.stdin_null = !reads_stdin;
  // A local run uses private ipc:// endpoints without CURVE (run's own client has no keys):
  // CURVE settings meant for a deployment must not leak into its children.
  for (const char* flag :
       {"--curve-secret-key", "--curve-broker-key", "--curve-sink-key", "--curve-authorized"}) {
    options.env.emplace_back(env_name(flag), "");
  }
  return options;
}

std::string format_rate(double value) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(value >= 100 ? 0 : 1);
  s << value;
  return s.str();
}

// One `topicflow run`: its children, its client of the sink, and what the phases found out.
class RunSession {
 public:
  RunSession(const RunOptions& options, const StopSignal& stop, std::ostream& out)
      : o_(options),
        stop_(stop),
        out_(out),
        started_ms_(steady_ms()),
        endpoints_(private_endpoints(dir_)),
        view_(ProgressView::parse_mode(options.progress)) {}

  int run() {
    declare_children(Binaries::find());
    print_metrics_urls();
    {
      zmq::context_t ctx(1);
      SinkClient client(ctx, endpoints_, random_id(), o_.producer.job);
      if (start_roles() && wait_for_sink(client) && wait_for_workers(client)) {
        submit_and_follow(client);
      }
      if (!finished_ && last_ && view_.mode() != ProgressView::Mode::none) view_.finish(*last_);
    }
    stop_children();
    const auto wall_ms = steady_ms() - started_ms_;
    if (fatal_) {
      std::cerr << "topicflow: error: " << fatal_->reason << "\n";
      return fatal_->exit_code;
    }
    return summarise(wall_ms);
  }

 private:
  // The children's command lines; nothing is started yet.
  void declare_children(const Binaries& bin) {
    auto sink_argv = role_argv(bin.sink, endpoints_, o_.log_level);
    append(sink_argv, o_.sink_args);
    // (with --http-port the sink serves its metrics there: --metrics-port is its alias)
    if (o_.sink.http_port == 0) append(sink_argv, metrics_args(0));
    sink_ = &sup_.add("sink", std::move(sink_argv), true, child_options(false));
    auto broker_argv = role_argv(bin.broker, endpoints_, o_.log_level);
    append(broker_argv, metrics_args(1));
    broker_ = &sup_.add("broker", std::move(broker_argv), true, child_options(false));
    for (int i = 1; i <= o_.workers; ++i) {
      auto argv = role_argv(bin.worker, endpoints_, o_.log_level);
      append(argv, o_.worker_args);
      append(argv, metrics_args(1 + i));
      workers_.push_back(
          &sup_.add("worker " + std::to_string(i), std::move(argv), true, child_options(false)));
    }
    auto producer_argv = role_argv(bin.producer, endpoints_, o_.log_level);
    producer_argv.insert(producer_argv.begin() + 1, o_.file);
    append(producer_argv, o_.producer_args);
    producer_ = &sup_.add("producer", std::move(producer_argv), false, child_options(true));
  }

  // Metrics: one port per role, fixed for the run (a restarted child gets its port back).
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> metrics_args(int offset) const {
    if (o_.metrics_port <= 0) return {};
    return {{"--metrics-port", std::to_string(o_.metrics_port + offset)},
            {"--metrics-address", o_.metrics_address}};
  }

  void print_metrics_urls() {
    if (o_.sink.http_port > 0) {
      out_ << "dashboard: http://127.0.0.1:" << o_.sink.http_port << "/ (API: /v1, see docs/api.md)"
           << std::endl;
    }
    if (o_.metrics_port <= 0) return;
    const auto url = "http://" + o_.metrics_address + ":";
    out_ << "metrics: sink " << url << o_.metrics_port << "/metrics, broker " << url
         << o_.metrics_port + 1 << "/metrics, workers " << url << o_.metrics_port + 2
         << (o_.workers > 1 ? ".." + std::to_string(o_.metrics_port + 1 + o_.workers)
                            : std::string())
         << "/metrics" << std::endl;
  }

  // False when the run cannot go on: fatal_ or interrupted_ says why.
  [[nodiscard]] bool can_go_on() {
    if (fatal_ || interrupted_) return false;
    if (stop_.triggered()) {
      interrupted_ = true;
      return false;
    }
    fatal_ = sup_.supervise();
    return !fatal_;
  }

  // 1. The sink, the broker and the workers.
  bool start_roles() {
    try {
      sup_.start(*sink_);
      sup_.start(*broker_);
      for (auto* w : workers_) sup_.start(*w);
    } catch (const std::exception& e) {
      fatal_ = Fatal{e.what(), 1};
    }
    return !fatal_;
  }

  // 2. The sink answers: from here on both directions work (see client.hpp's handshake).
  bool wait_for_sink(SinkClient& client) {
    const auto deadline = steady_ms() + kSinkReadyTimeoutMs;
    while (can_go_on()) {
      try {
        if (client.handshake(std::chrono::milliseconds(300), stop_)) return true;
        interrupted_ = true;  // the stop signal ended the handshake
      } catch (const std::runtime_error&) {
        if (steady_ms() > deadline) {
          fatal_ = Fatal{
              "the sink did not answer within " + std::to_string(kSinkReadyTimeoutMs / 1000) + " s",
              1};
        }
      }
    }
    return false;
  }

  // 3. Give the workers a moment to connect, so the first tasks are shared among them.
  bool wait_for_workers(SinkClient& client) {
    const auto deadline = steady_ms() + kWorkersWaitMs;
    while (steady_ms() < deadline && can_go_on()) {
      auto event = client.next_event(std::chrono::milliseconds(kPollMs), stop_);
      if (const auto* p = event ? std::get_if<wire::Progress>(&*event) : nullptr) {
        last_ = *p;
        if (p->workers >= static_cast<std::uint64_t>(o_.workers)) break;
      }
    }
    baseline_ = last_;
    return can_go_on();
  }

  // 4. Submit (the producer), and follow the job until nothing is pending or running.
  void submit_and_follow(SinkClient& client) {
    try {
      sup_.start(*producer_);
    } catch (const std::exception& e) {
      fatal_ = Fatal{e.what(), 1};
      return;
    }
    FollowOptions follow;
    follow.tick = [&] { return can_go_on() && producer_ok(); };
    // Before the producer exited 0 not every chunk is registered: a job whose first chunks are
    // done is not the job.
    follow.can_finish = [&](const wire::Progress& p) {
      return producer_done_ms_ && p.time_ms >= *producer_done_ms_;
    };
    follow.on_progress = [&](const wire::Progress& p) { last_ = p; };
    finished_ = follow_job(client, view_, stop_, follow).has_value();
    if (!finished_ && !fatal_ && stop_.triggered()) interrupted_ = true;
  }

  // The producer has not failed; notes when it is done.
  bool producer_ok() {
    if (producer_done_ms_) return true;
    const auto status = producer_->process->poll_exit();
    if (!status) return true;
    if (!status->success()) {
      fatal_ = Fatal{"producer (pid " + std::to_string(producer_->process->pid()) +
                         ") exited with " + status->describe(),
                     status->shell_code()};
      return false;
    }
    // Exit 0: every chunk was acknowledged, i.e. registered in the database. A progress event
    // computed before that moment may still sit in our queue; it must not end the wait.
    producer_done_ms_ = now_ms();
    return true;
  }

  // 5. Stop in order: nothing new, then the workers (they report or release what they hold),
  // the broker, and the sink last, so it commits everything it was sent.
  void stop_children() {
    const auto grace = std::chrono::milliseconds(o_.stop_timeout_ms);
    sup_.stop({producer_}, grace);
    sup_.stop(workers_, grace);
    sup_.stop({broker_}, grace);
    sup_.stop({sink_}, grace);
  }

  // 6. The summary, from the database itself (the sink has exited: everything is committed).
  int summarise(std::int64_t wall_ms) {
    const auto counts = final_counts();
    const double seconds = static_cast<double>(std::max<std::int64_t>(wall_ms, 1)) / 1000.0;
    if (counts) {
      const auto done =
          counts->count(store::Status::completed) + counts->count(store::Status::failed);
      const auto before = baseline_ ? baseline_->completed + baseline_->failed : 0;
      const auto done_now = done >= before ? done - before : 0;
      out_ << "job " << o_.producer.job << ": " << counts->count(store::Status::completed)
           << " completed, " << counts->count(store::Status::failed) << " failed, "
           << counts->count(store::Status::pending) << " pending, "
           << counts->count(store::Status::running) << " running (" << counts->total()
           << " topics)\n";
      out_ << "wall time " << format_rate(seconds) << " s, " << done_now
           << " topics finished in this run ("
           << format_rate(static_cast<double>(done_now) / seconds) << " topics/s)\n";
    }
    if (last_) {
      out_ << "sink: " << last_->batches << " batches committed, " << last_->busy_retries
           << " busy retries, " << last_->redelivered << " redelivered, " << last_->retried
           << " retried\n";
    }
    if (sup_.restarts() > 0) out_ << "restarts: " << sup_.restarts_text() << "\n";
    out_.flush();

    if (interrupted_) return 130;
    if (!counts) return 1;
    return counts->total() == counts->count(store::Status::completed) ? 0 : 1;
  }

  [[nodiscard]] std::optional<store::JobCounts> final_counts() const {
    const auto& db = o_.sink.db;
    const auto& job = o_.producer.job;
    try {
      if (fs::exists(db)) {
        auto reader = store::open_read_only(db);
        auto all = store::read_counts(reader, job);
        return all.empty() ? store::JobCounts{job, {}} : all.front();
      }
    } catch (const std::exception& e) {
      spdlog::error("cannot read the final counts from {}: {}", db, e.what());
    }
    if (last_) {
      return store::JobCounts{job,
                              {last_->pending, last_->running, last_->completed, last_->failed}};
    }
    return std::nullopt;
  }

  const RunOptions& o_;
  const StopSignal& stop_;
  std::ostream& out_;
  std::int64_t started_ms_;
  TempDir dir_;
  Endpoints endpoints_;
  ProgressView view_;
  Supervisor sup_;
  Child* sink_ = nullptr;
  Child* broker_ = nullptr;
  std::vector<Child*> workers_;
  Child* producer_ = nullptr;

  std::optional<Fatal> fatal_;
  bool interrupted_ = false;
  bool finished_ = false;
  std::optional<std::int64_t> producer_done_ms_;  // sink wall clock: later progress may end it
  std::optional<wire::Progress> last_;
  std::optional<wire::Progress> baseline_;  // before the submission: "finished in this run"
};

}  // namespace

int run_command(const RunOptions& o, const StopSignal& stop, std::ostream& out) {
  check_db_path(o.sink.db);
  return RunSession(o, stop, out).run();
}

}  // namespace topicflow::cli
