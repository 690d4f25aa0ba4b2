#pragma once
// The handler SDK: what a worker does with one task.
//
// To build your own worker binary, derive from Handler, implement handle(), and pass an instance
// to topicflow::Worker (worker.hpp). The built-in handlers (noop, sleep, fail, exec) are made
// from a --handler spec by make_handler().
//
// Thread-safety: a Worker calls Handler::handle() concurrently from up to --concurrency threads,
// on one Handler instance, so handle() must be safe to call from several threads at once (keep
// per-task state on the stack; guard shared state). CancelToken is thread-safe.

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace topicflow {

// The task a handler receives. The views stay valid for the duration of handle().
struct TaskView {
  std::string_view job;
  std::string_view key;
  std::string_view payload;
  std::uint32_t attempt = 1;  // 1 for the first delivery, +1 for every redelivery or retry
};

// What handle() returns: completed with result bytes, or failed with an error text and whether
// another attempt may help (the sink retries retryable failures with backoff, up to
// --max-attempts).
struct Outcome {
  enum class Kind : std::uint8_t { completed, failed };

  Kind kind = Kind::completed;
  std::string data;  // the result when completed, the error text when failed
  bool retryable = false;

  [[nodiscard]] static Outcome completed(std::string result = {}) {
    return Outcome{Kind::completed, std::move(result), false};
  }
  [[nodiscard]] static Outcome failed(std::string error, bool retryable) {
    return Outcome{Kind::failed, std::move(error), retryable};
  }
  [[nodiscard]] bool ok() const noexcept { return kind == Kind::completed; }
};

// Tells a running handler to stop: the worker cancels a task it gives back at shutdown, and a
// token may carry a deadline (--task-timeout-ms). Long-running handlers should check
// cancelled()/expired() or sleep with wait_until(); the worker cannot interrupt a handler that
// ignores its token (it abandons it at shutdown, after reporting the task as released).
// Thread-safe; not copyable.
class CancelToken {
 public:
  CancelToken() = default;
  // A token whose deadline is `timeout_ms` from now (no deadline when timeout_ms <= 0).
  explicit CancelToken(std::int64_t timeout_ms);
  ~CancelToken() = default;
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;

  void cancel() noexcept;
  // Cancels because the task's time is up: the worker calls it when --task-timeout-ms has passed
  // on its own clock (which tests move by hand), so expired() is then true whatever the steady
  // clock says. A handler that sees cancelled() should check expired() to tell the two apart.
  void expire() noexcept;
  [[nodiscard]] bool cancelled() const noexcept;

  // The timeout this token was made with (0: none), and its deadline on the steady clock
  // (topicflow::steady_ms(); INT64_MAX when none).
  [[nodiscard]] std::int64_t timeout_ms() const noexcept { return timeout_ms_; }
  [[nodiscard]] std::int64_t deadline_ms() const noexcept { return deadline_ms_; }
  // The deadline passed, or expire() was called.
  [[nodiscard]] bool expired() const noexcept;

  // Blocks until cancel() or steady_ms() >= until_ms (whichever first); true if cancelled.
  bool wait_until(std::int64_t until_ms) const;

 private:
  std::int64_t timeout_ms_ = 0;
  std::int64_t deadline_ms_ = std::numeric_limits<std::int64_t>::max();
  mutable std::mutex mutex_;
  mutable std::condition_variable cv_;
  bool cancelled_ = false;
  std::atomic<bool> expired_{false};
};

// A task handler. See the thread-safety note at the top of this file.
class Handler {
 public:
  virtual ~Handler() = default;
  Handler() = default;
  Handler(const Handler&) = delete;
  Handler& operator=(const Handler&) = delete;

  // Runs one task. May be called concurrently from several threads. An exception escaping
  // handle() is reported by the worker as a retryable failure with the exception's text.
  [[nodiscard]] virtual Outcome handle(const TaskView& task, const CancelToken& cancel) = 0;

  // A short description for logs, e.g. "sleep:20-100,fail:0.1".
  [[nodiscard]] virtual std::string describe() const = 0;
};

struct HandlerOptions {
  // exec: stdout beyond this many bytes is read and discarded (the result is truncated).
  std::size_t max_result_bytes = 1 << 20;
  // exec: how much of the end of stderr becomes the error text of a failure.
  std::size_t max_error_bytes = 2048;
  // sleep/fail: seed of the random draws (0: a random seed), so tests can pin them.
  std::uint64_t seed = 0;
};

// Parses a --handler spec:
//   noop                 completes at once with an empty result
//   sleep:MIN-MAX        sleeps a uniform random MIN..MAX ms (sleep:N sleeps N ms), completes
//   fail:P               fails (retryable, "simulated failure (fail:P)") with probability P
//   sleep:20-100,fail:0.1  both (sleep, then maybe fail)
//   exec:COMMAND         runs COMMAND through /bin/sh -c per task (see ExecHandler)
//   exec-persistent:COMMAND  one long-lived COMMAND per slot, JSON Lines (see
//   PersistentExecHandler)
// Throws std::invalid_argument with a one-line reason on a bad spec.
[[nodiscard]] std::unique_ptr<Handler> make_handler(std::string_view spec,
                                                    const HandlerOptions& options = {});

// exec:COMMAND, exposed for tests and embedding. Per task: runs `/bin/sh -c COMMAND` in its own
// process group with the payload on stdin and TOPICFLOW_JOB, TOPICFLOW_KEY, TOPICFLOW_ATTEMPT in
// its environment. Exit 0: completed with stdout (truncated to max_result_bytes). Exit 75
// (EX_TEMPFAIL): retryable failure. Any other exit: permanent failure whose error is the tail of
// stderr. Killed by a signal: retryable failure. Token deadline passed: the process group is
// killed, retryable failure "timed out after N ms". Token cancelled: the group is killed,
// retryable failure "cancelled". When the command exits, whatever is left of its process group
// is killed too. No zombies, no leaked descriptors. Thread-safe.
class ExecHandler final : public Handler {
 public:
  explicit ExecHandler(std::string command, const HandlerOptions& options = {});
  [[nodiscard]] Outcome handle(const TaskView& task, const CancelToken& cancel) override;
  [[nodiscard]] std::string describe() const override { return "exec:" + command_; }

 private:
  std::string command_;
  HandlerOptions options_;
};

// exec-persistent:COMMAND: one long-lived `/bin/sh -c COMMAND` co-process per concurrently
// running task (so at most --concurrency), started on first use and reused, each in its own
// process group, speaking JSON Lines (docs/handlers.md, "Persistent mode"):
//   request, one line on its stdin:   {"job":J,"key":K,"attempt":N,"payload":"..."}
//     ("payload_base64":"..." instead of "payload" when the payload is not valid UTF-8)
//   response, one line on its stdout: {"status":"completed","result":...}
//                                     {"status":"retry","error":"..."}
//                                     {"status":"failed","error":"..."}
// A string result is stored as is, any other JSON value as its JSON text (then truncated to
// max_result_bytes). A response line longer than 2 * max_result_bytes + 64 KiB is read and
// discarded: permanent failure, the co-process is kept. A line that is not such a JSON object:
// permanent failure, the co-process is restarted. The co-process dying mid-task, however it
// ends: retryable failure with its exit status and stderr tail, and the next task starts a new
// one (a topic that crashes it every time fails after --max-attempts). Closing its stdout
// without exiting: permanent failure. Token deadline passed or cancelled: the group is killed
// (retryable "timed out after N ms" / "cancelled") and the next task starts a new one. At
// destruction idle co-processes get EOF on stdin and up to 1 s to exit before their groups are
// killed; all are reaped. Thread-safe.
class PersistentExecHandler final : public Handler {
 public:
  explicit PersistentExecHandler(std::string command, const HandlerOptions& options = {});
  ~PersistentExecHandler() override;
  PersistentExecHandler(const PersistentExecHandler&) = delete;
  PersistentExecHandler& operator=(const PersistentExecHandler&) = delete;
  [[nodiscard]] Outcome handle(const TaskView& task, const CancelToken& cancel) override;
  [[nodiscard]] std::string describe() const override { return "exec-persistent:" + command_; }

  // Co-processes started so far, and those idle now (for tests and logs).
  [[nodiscard]] std::uint64_t started() const noexcept { return started_.load(); }
  [[nodiscard]] std::size_t idle() const;

  struct CoProcess;  // one running co-process (internal)

 private:
  std::unique_ptr<CoProcess> checkout(std::string& error);
  std::unique_ptr<CoProcess> spawn(std::string& error);
  void give_back(std::unique_ptr<CoProcess> co);

  std::string command_;
  HandlerOptions options_;
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<CoProcess>> idle_;  // guarded by mutex_
  std::atomic<std::uint64_t> started_{0};
};

}  // namespace topicflow
