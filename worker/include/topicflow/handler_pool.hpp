#pragma once
// The handler threads of a Worker: `threads` threads that take tasks from a queue, run the
// Handler on each, and hand the outcomes back through a queue and an eventfd that the worker's
// poll loop watches. What the threads share lives behind a shared_ptr, so a thread abandoned at
// close() (a handler that ignores its CancelToken) never touches freed memory.
//
// Owns the threads; close() (also run by the destructor, so an exception cannot leave joinable
// threads behind) lets idle threads exit, gives busy ones `join_ms` to return and detaches the
// rest. A handler that throws is a retryable failure with the exception's text.
// Thread-safety: every member function from the owner's thread only.

#include <topicflow/handler.hpp>
#include <topicflow/wire.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

namespace topicflow {

class HandlerPool {
 public:
  // One task for a thread: the worker's id for it, the task, and its token.
  struct Job {
    std::uint64_t id = 0;
    wire::Task task;
    std::shared_ptr<CancelToken> token;
  };
  // One outcome, under the id its Job had.
  struct Done {
    std::uint64_t id = 0;
    Outcome outcome;
  };

  // Starts `threads` threads. Throws std::system_error / std::runtime_error (eventfd) when the
  // system refuses; no thread is left running then.
  HandlerPool(std::shared_ptr<Handler> handler, std::size_t threads);
  ~HandlerPool();
  HandlerPool(const HandlerPool&) = delete;
  HandlerPool& operator=(const HandlerPool&) = delete;

  // Queues the jobs; free threads take them in order.
  void submit(std::vector<Job> jobs);
  // The outcomes finished since the last call, in the order they finished.
  [[nodiscard]] std::vector<Done> take_done();

  // Readable while an outcome waits; put it in the poll set, and call drain_wake() once it
  // fired (before take_done(), so no outcome is missed).
  [[nodiscard]] int wake_fd() const noexcept;
  void drain_wake() noexcept;

  // Drops the queued jobs, lets the threads exit, waits up to `join_ms` for the busy ones and
  // detaches those still running. True if every thread exited (and was joined).
  bool close(std::int64_t join_ms = 300) noexcept;

 private:
  struct Shared;
  static void thread_main(const std::shared_ptr<Shared>& shared);

  std::shared_ptr<Shared> shared_;
  std::vector<std::thread> threads_;
};

}  // namespace topicflow
