#pragma once
// The supervisor of `topicflow run`: starts its children, notices when one dies and restarts it
// with backoff, and tells a misconfigured child (one that rejects its flags, or exits by itself
// at startup) from an unlucky one (killed, or dying mid-run), which is restarted.
//
// Processes come from a Launcher and time from a Clock, so a unit test can start fake processes
// and move time by hand (tests/supervisor_test.cpp). Owns its children: the destructor of each
// Process kills what is still running. Not thread-safe: one owner thread.

#include <topicflow/backoff.hpp>
#include <topicflow/clock.hpp>
#include <topicflow/process.hpp>

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace topicflow::cli {

// A started child as the supervisor sees it (ChildProcess in production).
class Process {
 public:
  Process() = default;
  virtual ~Process() = default;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  [[nodiscard]] virtual pid_t pid() const noexcept = 0;
  [[nodiscard]] virtual bool running() const noexcept = 0;
  // Non-blocking: the exit status once it ended, nothing while it runs.
  virtual std::optional<ExitStatus> poll_exit() noexcept = 0;
  virtual void terminate(int signal) noexcept = 0;
  virtual std::optional<ExitStatus> wait_for(std::chrono::milliseconds timeout) noexcept = 0;
  // terminate(signal), wait up to `grace`, then SIGKILL.
  virtual ExitStatus stop(int signal, std::chrono::milliseconds grace) noexcept = 0;
};

// Starts argv with options; throws (std::system_error) when it cannot.
using Launcher = std::function<std::unique_ptr<Process>(const std::vector<std::string>& argv,
                                                        const SpawnOptions& options)>;
// The real one: a ChildProcess.
[[nodiscard]] Launcher process_launcher();
// This process forked, running `body` as the child's program (ChildProcess's fork constructor:
// only while the process has a single thread).
[[nodiscard]] std::unique_ptr<Process> fork_process(const std::function<int()>& body,
                                                    const std::string& name,
                                                    const SpawnOptions& options);

// Why a run cannot go on, and the exit status `topicflow run` returns for it.
struct Fatal {
  std::string reason;
  int exit_code = 1;
};

// One supervised child.
struct Child {
  std::string name;  // "sink", "broker", "worker 3", "producer"
  std::vector<std::string> argv;
  bool restartable = true;
  SpawnOptions options;
  std::unique_ptr<Process> process;
  std::int64_t first_started_ms = 0;  // the supervisor's clock; 0: never started
  std::int64_t started_ms = 0;
  bool ready = false;  // it did its job once (the sink answered): no longer at startup
  std::optional<std::int64_t> restart_at;
  unsigned crashes = 0;  // consecutive deaths, for the backoff
  unsigned restarts = 0;
  Backoff backoff{200, 10000};
};

class Supervisor {
 public:
  // A child that exits (not killed by a signal) this soon after its first start, before it was
  // marked ready, is misconfigured, not unlucky: restarting it would only loop (an unwritable
  // database, a used endpoint), so the run stops instead. Any other death is logged as
  // mid-run, with how long the child had run, and restarted.
  static constexpr std::int64_t kStartupGraceMs = 1000;
  // A child that ran this long before it died starts its restart backoff from the beginning.
  static constexpr std::int64_t kHealthyRunMs = 30000;
  // The shortest restart delay.
  static constexpr std::int64_t kMinRestartMs = 50;

  explicit Supervisor(Launcher launcher = process_launcher(), const Clock& clock = steady_clock());

  // Declares a child (not started yet). The reference stays valid for the supervisor's life.
  Child& add(std::string name, std::vector<std::string> argv, bool restartable,
             SpawnOptions options = {});
  // Starts (or restarts) a child; throws as the Launcher does. A start waits for the child's
  // exec, a few milliseconds each on a busy machine.
  void start(Child& child);
  // The child showed it works (the sink answered a client): from now on a death is mid-run,
  // even within kStartupGraceMs of its start, and is restarted instead of stopping the run.
  static void mark_ready(Child& child) noexcept { child.ready = true; }
  // Starts the children of `group` one after the other on a thread of its own, so the caller
  // goes on meanwhile (`topicflow run` submits while its workers come up); supervise() takes
  // each one over as soon as it started (a child that cannot be started: Fatal, exit 1). The
  // Launcher must be thread-safe (process_launcher() is). One group per supervisor: the thread
  // that started the children stays until the supervisor goes (Linux's parent-death signal,
  // SpawnOptions::die_with_parent, follows the thread that forked, not the process).
  void start_in_background(std::vector<Child*> group);
  // Children of start_in_background() not started yet.
  [[nodiscard]] std::size_t starting() const;
  // Reaps the restartable children that died and restarts those whose backoff has passed.
  // Returns why the run must stop when one cannot usefully be restarted (it rejected its
  // options: exit 2; it exited by itself at startup, or cannot be started again: exit 1).
  [[nodiscard]] std::optional<Fatal> supervise();
  // SIGTERM to every child of `group` at once, then SIGKILL to those still running after
  // `grace`; none of them is restarted afterwards. Background starts not done yet are cancelled
  // first (what did start is stopped with the rest).
  void stop(const std::vector<Child*>& group, std::chrono::milliseconds grace);

  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  [[nodiscard]] std::list<Child>& children() noexcept { return children_; }
  // "worker 2 x1, broker x2": the children restarted, empty when none was; and their sum.
  [[nodiscard]] std::string restarts_text() const;
  [[nodiscard]] unsigned restarts() const noexcept;

  // "a b c"
  [[nodiscard]] static std::string join(const std::vector<std::string>& argv);

 private:
  // Takes over what the background thread started; a Fatal when a start failed.
  std::optional<Fatal> adopt_started();
  // Ends the background starts (those not begun are not begun) and takes over what started.
  void finish_background();

  Launcher launcher_;
  const Clock& clock_;
  std::list<Child> children_;  // stable addresses

  struct Started {
    Child* child = nullptr;
    std::unique_ptr<Process> process;  // null when the start failed
    std::string error;
  };
  mutable std::mutex mutex_;  // guards what follows but starter_
  std::condition_variable changed_;
  std::vector<Started> started_;     // by the background thread, not taken over yet
  std::size_t pending_ = 0;          // children of the background group not started yet
  std::atomic<bool> cancel_{false};  // start no more
  bool exit_ = false;                // the background thread may end (destructor)
  std::thread starter_;
};

}  // namespace topicflow::cli
