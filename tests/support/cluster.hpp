#pragma once
// A topicflow deployment made of the real binaries, for fault tests: broker, sink, workers and
// producers as separate processes on private ipc:// endpoints in a temp dir, each logging to its
// own file there. Every wait is bounded; the destructor kills whatever is still running.

#include <topicflow/clock.hpp>
#include <topicflow/process.hpp>
#include <topicflow/sqlite.hpp>
#include <topicflow/store.hpp>

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace topicflow::testing {

namespace fs = std::filesystem;

class Cluster {
 public:
  explicit Cluster(std::string name) {
    dir_ = fs::temp_directory_path() /
           ("tf-" + name + "-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}() % 100000));
    fs::create_directories(dir_);
    db_ = (dir_ / "topicflow.db").string();
  }
  ~Cluster() {
    for (auto* group : {&producers_, &workers_}) group->clear();
    broker_ = {};
    sink_ = {};
    if (!::testing::Test::HasFailure()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    } else {
      std::cerr << "fault test logs kept in " << dir_ << "\n";
    }
  }
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  std::vector<std::string> endpoints() const {
    const auto d = dir_.string();
    return {"--frontend", "ipc://" + d + "/fe", "--backend", "ipc://" + d + "/be",
            "--sink",     "ipc://" + d + "/sink", "--events", "ipc://" + d + "/ev"};
  }

  ChildProcess spawn(const std::string& binary, const std::string& log, std::vector<std::string> args) {
    std::vector<std::string> argv{std::string(TOPICFLOW_TEST_BIN_DIR) + "/" + binary};
    for (auto& a : endpoints()) argv.push_back(a);
    for (auto& a : args) argv.push_back(std::move(a));
    SpawnOptions o;
    o.stdout_path = (dir_ / (log + ".log")).string();
    o.stderr_path = o.stdout_path;
    o.stdin_null = true;
    o.die_with_parent = true;
    return ChildProcess(argv, o);
  }

  void start_broker(std::vector<std::string> args = {}) { broker_ = spawn("topicflow-broker", "broker", std::move(args)); }
  void start_sink(std::vector<std::string> args = {}) {
    args.insert(args.begin(), {"--db", db_});
    sink_ = spawn("topicflow-sink", "sink", std::move(args));
  }
  void start_workers(int n, std::vector<std::string> args) {
    for (int i = 0; i < n; ++i) workers_.push_back(spawn("topicflow-worker", "worker" + std::to_string(workers_.size()), args));
  }
  ChildProcess& start_producer(const std::string& file, std::vector<std::string> args = {}) {
    args.push_back(file);
    producers_.push_back(spawn("topicflow-producer", "producer" + std::to_string(producers_.size()), std::move(args)));
    return producers_.back();
  }

  std::string write_topics(const std::string& name, int n) {
    const auto path = (dir_ / name).string();
    std::ofstream out(path);
    for (int i = 0; i < n; ++i) out << "topic " << i << "\n";
    return path;
  }

  // Counts per status of `job` read from the database (read-only; the sink may be writing).
  store::JobCounts counts(const std::string& job = "default") {
    try {
      auto db = store::open_read_only(db_);
      auto all = store::read_counts(db, job);
      if (!all.empty()) return all.front();
    } catch (const std::exception&) {
      // not created yet, or busy for a moment: report nothing
    }
    return store::JobCounts{job, {}};
  }

  // Polls the database until pred(counts) holds; false after the timeout.
  bool wait_counts(const std::function<bool(const store::JobCounts&)>& pred, int timeout_ms,
                   const std::string& job = "default") {
    const auto deadline = steady_ms() + timeout_ms;
    while (steady_ms() < deadline) {
      if (pred(counts(job))) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return pred(counts(job));
  }

  static std::string describe(const store::JobCounts& c) {
    std::ostringstream s;
    s << "pending=" << c.count(store::Status::pending) << " running=" << c.count(store::Status::running)
      << " completed=" << c.count(store::Status::completed) << " failed=" << c.count(store::Status::failed);
    return s.str();
  }

  std::string log(const std::string& name) const {
    std::ifstream in(dir_ / (name + ".log"));
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  sqlite::Database open_db() const { return sqlite::Database(db_, sqlite::OpenMode::read_only); }

  ChildProcess& broker() { return broker_; }
  ChildProcess& sink() { return sink_; }
  std::vector<ChildProcess>& workers() { return workers_; }
  const std::string& db() const { return db_; }
  const fs::path& dir() const { return dir_; }

 private:
  fs::path dir_;
  std::string db_;
  ChildProcess broker_;
  ChildProcess sink_;
  std::vector<ChildProcess> workers_;
  std::vector<ChildProcess> producers_;
};

}  // namespace topicflow::testing
