#pragma once
// A stop request that a poll loop can watch: a self-pipe (zguide's interrupt.c). trigger() only
// writes one byte, so it is async-signal-safe; install_signal_handlers() routes SIGINT/SIGTERM
// to one StopSignal, and a second signal exits the process at once (status 130).
// Thread-safe: trigger() and triggered() may be called from any thread.

#include <atomic>

namespace topicflow {

class StopSignal {
 public:
  StopSignal();
  ~StopSignal();
  StopSignal(const StopSignal&) = delete;
  StopSignal& operator=(const StopSignal&) = delete;

  void trigger() noexcept;
  [[nodiscard]] bool triggered() const noexcept {
    return triggered_.load(std::memory_order_acquire);
  }
  // Readable once triggered; put it in a zmq poll set as a raw fd.
  [[nodiscard]] int fd() const noexcept { return read_fd_; }

 private:
  int read_fd_ = -1;
  int write_fd_ = -1;
  std::atomic<bool> triggered_{false};
};

// SIGINT and SIGTERM trigger `stop`; a second one calls _exit(130). SIGPIPE is ignored.
void install_signal_handlers(StopSignal& stop);

}  // namespace topicflow
