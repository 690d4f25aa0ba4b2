#pragma once
// Child processes for supervisors (`topicflow run`) and end-to-end tests: fork/exec of an argv
// with extra environment variables, optional stdout/stderr redirection to files, optionally in
// its own process group (so a terminal's Ctrl-C reaches only the supervisor, and terminate()
// reaches the child's own children too).
//
// ChildProcess owns the child: move-only, and its noexcept destructor SIGKILLs (the group, if it
// has one) and reaps a child that is still running, so a failing test or supervisor never leaks
// processes. The constructor throws std::system_error ("cannot start PATH: No such file or
// directory") when the program cannot be executed. Not thread-safe: one owner thread.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace topicflow {

struct SpawnOptions {
  std::vector<std::pair<std::string, std::string>> env;  // set (or override) in the child
  std::optional<std::string> stdout_path;                // appended to, created 0644
  std::optional<std::string> stderr_path;                // may equal stdout_path
  bool stdin_null = false;                               // stdin from /dev/null
  bool new_process_group = false;                        // child leads its own group
  bool die_with_parent = false;                          // Linux PR_SET_PDEATHSIG(SIGKILL)
};

// How a child ended: an exit code, or the signal that killed it.
struct ExitStatus {
  int code = 0;    // exit code when !signaled()
  int signal = 0;  // killing signal, 0 if it exited
  [[nodiscard]] bool signaled() const noexcept { return signal != 0; }
  [[nodiscard]] bool success() const noexcept { return signal == 0 && code == 0; }
  // The shell's convention: code, or 128 + signal.
  [[nodiscard]] int shell_code() const noexcept { return signal != 0 ? 128 + signal : code; }
  // "status 3" or "signal 9 (Killed)"
  [[nodiscard]] std::string describe() const;
  [[nodiscard]] static ExitStatus from_wait_status(int wait_status) noexcept;
};

class ChildProcess {
 public:
  ChildProcess() = default;  // owns nothing
  // argv[0] is a path, or a name looked up in PATH.
  explicit ChildProcess(const std::vector<std::string>& argv, const SpawnOptions& options = {});
  // Forks without exec: the child sets itself up as `options` say (stdout/stderr files, process
  // group, parent-death signal, default signal dispositions), names itself `name` (the comm of
  // /proc and ps, at most 15 bytes) and runs `body`, whose result is its exit code (flushing
  // stdio first). Much cheaper than an exec, which loads a program and its libraries again.
  // Only while the calling process has a single thread: a fork copies just the calling thread,
  // and a lock another thread held would stay locked in the child. Throws std::system_error.
  ChildProcess(const std::function<int()>& body, const std::string& name,
               const SpawnOptions& options);
  ~ChildProcess();
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  // Started and not reaped yet.
  [[nodiscard]] bool running() const noexcept { return pid_ > 0 && !status_; }
  // Non-blocking: the exit status once the child has ended (reaping it), nothing while it runs.
  std::optional<ExitStatus> poll_exit() noexcept;
  // Sends `signal` to the child (or its group); no effect once it has been reaped.
  void terminate(int signal) noexcept;
  // Waits up to `timeout` for the child to end.
  std::optional<ExitStatus> wait_for(std::chrono::milliseconds timeout) noexcept;
  // terminate(signal), wait up to `grace`, then SIGKILL and wait for it.
  ExitStatus stop(int signal, std::chrono::milliseconds grace) noexcept;
  // The status after it was reaped.
  [[nodiscard]] const std::optional<ExitStatus>& exit_status() const noexcept { return status_; }

 private:
  void kill_and_reap() noexcept;

  pid_t pid_ = -1;
  bool own_group_ = false;
  std::optional<ExitStatus> status_;
};

// The directory of the running executable (dirname of /proc/self/exe). Throws std::system_error.
[[nodiscard]] std::string executable_dir();
// Where the topicflow binaries are: $TOPICFLOW_BIN_DIR if set, otherwise executable_dir() (every
// binary is built into the same directory, so siblings are found next to the running one).
[[nodiscard]] std::string topicflow_bin_dir();

}  // namespace topicflow
