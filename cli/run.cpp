// `topicflow run`: a whole local system (sink, broker, workers) for one input file, on private
// ipc:// endpoints, supervised until the job is done; the producer's work (validate, submit,
// follow) runs in this process. The phases of a run are the member functions of RunSession, in
// the order run() calls them; the children are the Supervisor's (supervisor.hpp), the
// submission is the Producer's (producer.hpp) and the job is followed as `topicflow-producer
// --wait` does (follow_job in client.hpp).
//
// Nothing waits for anything it does not need: every child starts at once, the topics are
// submitted as soon as the sink answers (its dispatch window hands out one task per worker slot
// it has heard of, so workers still starting lose nothing and early ones hoard nothing), and the
// children are stopped as soon as the job's last topic is committed.
#include <topicflow/cli.hpp>
#include <topicflow/client.hpp>
#include <topicflow/clock.hpp>
#include <topicflow/config.hpp>
#include <topicflow/log.hpp>
#include <topicflow/process.hpp>
#include <topicflow/producer.hpp>
#include <topicflow/random_id.hpp>
#include <topicflow/run_worker.hpp>
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
// The sink answers a hello with an ack and then the job's progress: how long to wait for that
// progress (the job before this run: "N topics finished in this run").
constexpr std::int64_t kBaselineWaitMs = 1000;
constexpr std::int64_t kPollMs = 100;
#if defined(__SANITIZE_THREAD__)
constexpr bool kForkWorkers = false;
#else
constexpr bool kForkWorkers = true;
#endif

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
  std::string sink, broker, worker;

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
    return {one("topicflow-sink"), one("topicflow-broker"), one("topicflow-worker")};
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
SpawnOptions child_options() {
  SpawnOptions options;
  options.new_process_group = true;
  options.die_with_parent = true;  // nothing outlives a `run` killed with SIGKILL
  options.stdin_null = true;
  // A local run uses private ipc:// endpoints without CURVE (run's own client has no keys):
  // CURVE settings meant for a deployment must not leak into its children.
  for (const char* flag :
       {"--curve-secret-key", "--curve-broker-key", "--curve-sink-key", "--curve-authorized"}) {
    options.env.emplace_back(env_name(flag), "");
  }
  return options;
}

ProducerConfig producer_config(const RunOptions& o) {
  auto cfg = o.producer;  // --job, --format
  cfg.file = o.file;
  cfg.progress = "none";  // run shows the progress itself
  return cfg;
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
        producer_(producer_config(options)),
        endpoints_(private_endpoints(dir_)),
        view_(ProgressView::parse_mode(options.progress)) {}

  int run() {
    producer_.validate();  // a bad line stops the run before anything starts
    declare_children(Binaries::find());
    print_metrics_urls();
    if (start_roles()) {  // first: the workers are forked before this process has threads
      zmq::context_t ctx(1);
      SinkClient client(ctx, endpoints_, random_id(), o_.producer.job);
      if (wait_for_sink(client) && submit(client)) follow(client);
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
    worker_binary_ = bin.worker;
    auto sink_argv = role_argv(bin.sink, endpoints_, o_.log_level);
    append(sink_argv, o_.sink_args);
    // (with --http-port the sink serves its metrics there: --metrics-port is its alias)
    if (o_.sink.http_port == 0) append(sink_argv, metrics_args(0));
    sink_ = &sup_.add("sink", std::move(sink_argv), true, child_options());
    auto broker_argv = role_argv(bin.broker, endpoints_, o_.log_level);
    append(broker_argv, metrics_args(1));
    broker_ = &sup_.add("broker", std::move(broker_argv), true, child_options());
    for (int i = 1; i <= o_.workers; ++i) {
      auto argv = role_argv(bin.worker, endpoints_, o_.log_level);
      append(argv, o_.worker_args);
      append(argv, metrics_args(1 + i));
      workers_.push_back(
          &sup_.add("worker " + std::to_string(i), std::move(argv), true, child_options()));
    }
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

  // 1. The sink, the broker and the workers. A worker is this process forked, running
  // topicflow-worker's program on its command line: starting one costs a fork instead of
  // loading the binary and its libraries again (~20 ms of CPU each, the bulk of a short run's
  // CPU with 58 workers). That is safe only while this process has one thread, i.e. now;
  // a worker restarted later runs the topicflow-worker binary. (Under ThreadSanitizer, whose
  // runtime has a thread of its own, every worker runs the binary, started on a thread of the
  // supervisor's so the submission does not wait for 58 execs.)
  bool start_roles() {
    try {
      sup_.start(*sink_);  // first: it is the longest to get ready (opens the database)
      sup_.start(*broker_);
      if (kForkWorkers) {
        for (auto* w : workers_) sup_.start(*w);
      }
      fork_workers_ = false;
    } catch (const std::exception& e) {
      fatal_ = Fatal{e.what(), 1};
      return false;
    }
    if (!kForkWorkers) sup_.start_in_background(workers_);
    return true;
  }

  std::unique_ptr<Process> launch(const std::vector<std::string>& argv,
                                  const SpawnOptions& options) const {
    if (!fork_workers_ || argv.front() != worker_binary_) return process_launcher()(argv, options);
    return fork_process(
        [argv] {
          std::vector<std::string> args = argv;
          std::vector<char*> pointers;
          pointers.reserve(args.size() + 1);
          for (auto& a : args) pointers.push_back(a.data());
          pointers.push_back(nullptr);
          const int code = stock_worker_main(static_cast<int>(args.size()), pointers.data());
          spdlog::shutdown();
          return code;
        },
        "topicflow-worker", options);
  }

  // 2. The sink answers: from here on both directions work (see client.hpp's handshake).
  bool wait_for_sink(SinkClient& client) {
    const auto deadline = steady_ms() + kSinkReadyTimeoutMs;
    while (can_go_on()) {
      try {
        if (client.handshake(std::chrono::milliseconds(300), stop_)) {
          Supervisor::mark_ready(*sink_);
          return true;
        }
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

  // 3. Submit: the producer's work, through our client; the children are supervised meanwhile.
  bool submit(SinkClient& client) {
    baseline_ = job_before(client);
    const bool submitted = producer_.submit(client, stop_, [&] { return can_go_on(); });
    if (!submitted && !fatal_ && stop_.triggered()) interrupted_ = true;
    return submitted;
  }

  // The job's progress the sink sends right after its hello ack: what was done before this run.
  std::optional<wire::Progress> job_before(SinkClient& client) {
    const auto deadline = steady_ms() + kBaselineWaitMs;
    while (steady_ms() < deadline && can_go_on()) {
      auto event = client.next_event(std::chrono::milliseconds(kPollMs), stop_);
      if (const auto* p = event ? std::get_if<wire::Progress>(&*event) : nullptr) {
        last_ = *p;
        return *p;
      }
    }
    return std::nullopt;
  }

  // 4. Follow the job until nothing is pending or running. Every chunk is acknowledged, i.e.
  // committed, and the sink publishes in order: what arrives now counts the whole job.
  void follow(SinkClient& client) {
    FollowOptions follow;
    follow.tick = [&] { return can_go_on(); };
    follow.on_progress = [&](const wire::Progress& p) { last_ = p; };
    finished_ = follow_job(client, view_, stop_, follow).has_value();
    if (!finished_ && !fatal_ && stop_.triggered()) interrupted_ = true;
  }

  // 5. Stop. A finished job has nothing left anywhere (its last topic is committed, nothing is
  // in transit): every child gets SIGTERM at once. Otherwise (interrupted, a fatal error) in
  // order: the workers (they report or release what they hold) and the broker together (what it
  // still queues is in transit for the sink, which sends it again next time), then the sink, so
  // it commits everything it was sent.
  void stop_children() {
    const auto grace = std::chrono::milliseconds(o_.stop_timeout_ms);
    auto first = workers_;
    first.push_back(broker_);
    const auto t0 = steady_ms();
    if (finished_) first.push_back(sink_);
    sup_.stop(first, grace);
    const auto t1 = steady_ms();
    if (!finished_) sup_.stop({sink_}, grace);
    spdlog::debug("stopped the workers and the broker in {} ms, the sink in {} ms", t1 - t0,
                  steady_ms() - t1);
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
  Producer producer_;
  TempDir dir_;
  Endpoints endpoints_;
  ProgressView view_;
  std::string worker_binary_;
  bool fork_workers_ = kForkWorkers;  // until the first thread exists
  Supervisor sup_{[this](const std::vector<std::string>& argv, const SpawnOptions& options) {
    return launch(argv, options);
  }};
  Child* sink_ = nullptr;
  Child* broker_ = nullptr;
  std::vector<Child*> workers_;

  std::optional<Fatal> fatal_;
  bool interrupted_ = false;
  bool finished_ = false;
  std::optional<wire::Progress> last_;
  std::optional<wire::Progress> baseline_;  // before the submission: "finished in this run"
};

}  // namespace

int run_command(const RunOptions& o, const StopSignal& stop, std::ostream& out) {
  check_db_path(o.sink.db);
  return RunSession(o, stop, out).run();
}

}  // namespace topicflow::cli
