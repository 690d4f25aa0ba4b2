#pragma once
// The worker as the last parent of what its handlers leave behind.
//
// A handler's command can start processes of its own (`sh -c "python3 ..."` forks python3, a
// script backgrounds `sleep &`). When the command's shell ends, its children are orphaned and
// the kernel hands them to the nearest ancestor marked as a child subreaper, or to PID 1. In a
// container whose PID 1 is not an init (`sleep infinity`, the application itself), nobody reaps
// them: they stay zombies. An OrphanReaper makes this process a subreaper
// (PR_SET_CHILD_SUBREAPER), so orphans come to the worker, and reaps them from a thread of its
// own.
//
// It never steals an exit status someone in this process waits for. It reaps a zombie child only
// when
//  - no handler owns it: the exec handlers register every shell and co-process they start
//    (spawn_owned() / reap_owned(), internal to the worker library) and wait for it themselves;
//  - it is not in this process's own process group: children that in-process code forks the
//    ordinary way (fork, popen, system) stay in it, and whoever forked them waits for them.
//    Handlers' children lead groups of their own, and their orphans stay in those groups (or in
//    groups they made themselves).
//
// Thread-safe. One per process is enough; the subreaper flag stays set after destruction.

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

namespace topicflow {

class OrphanReaper {
 public:
  // Marks this process a child subreaper and starts the thread that calls reap_orphans() every
  // `interval`. Throws std::system_error when prctl refuses.
  explicit OrphanReaper(std::chrono::milliseconds interval = std::chrono::milliseconds(250));
  ~OrphanReaper();  // stops the thread
  OrphanReaper(const OrphanReaper&) = delete;
  OrphanReaper& operator=(const OrphanReaper&) = delete;

  // Orphans reaped by this reaper's thread so far.
  [[nodiscard]] std::uint64_t reaped() const noexcept { return reaped_.load(); }

  // One sweep (what the thread does): reaps every zombie child that nobody here owns (see
  // above) and returns how many. Cheap when there is none: one waitid() call.
  static std::size_t reap_orphans();

 private:
  void run(std::chrono::milliseconds interval);

  std::atomic<std::uint64_t> reaped_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace topicflow
