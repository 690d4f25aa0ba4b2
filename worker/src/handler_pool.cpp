#include <topicflow/handler_pool.hpp>

#include <sys/eventfd.h>
#include <unistd.h>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

namespace topicflow {

struct HandlerPool::Shared {
  std::shared_ptr<Handler> handler;
  std::mutex mutex;
  std::condition_variable cv;  // jobs available / closing / a thread exited
  std::deque<Job> jobs;
  std::vector<Done> done;
  bool closing = false;
  int alive = 0;
  int wake_fd = -1;  // eventfd: written once per Done

  explicit Shared(std::shared_ptr<Handler> h)
      : handler(std::move(h)), wake_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (wake_fd < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
  }
  ~Shared() { ::close(wake_fd); }
  Shared(const Shared&) = delete;
  Shared& operator=(const Shared&) = delete;

  void wake() const noexcept {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto n = ::write(wake_fd, &one, sizeof one);
  }
};

HandlerPool::HandlerPool(std::shared_ptr<Handler> handler, std::size_t threads)
    : shared_(std::make_shared<Shared>(std::move(handler))) {
  {
    const std::lock_guard lock(shared_->mutex);
    shared_->alive = static_cast<int>(threads);
  }
  threads_.reserve(threads);
  try {
    for (std::size_t i = 0; i < threads; ++i)
      threads_.emplace_back([shared = shared_] { thread_main(shared); });
  } catch (...) {
    {
      const std::lock_guard lock(shared_->mutex);
      shared_->alive -= static_cast<int>(threads - threads_.size());
    }
    close();
    throw;
  }
}

HandlerPool::~HandlerPool() { close(); }

void HandlerPool::thread_main(const std::shared_ptr<Shared>& shared) {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(shared->mutex);
      shared->cv.wait(lock, [&] { return shared->closing || !shared->jobs.empty(); });
      if (shared->jobs.empty()) break;
      job = std::move(shared->jobs.front());
      shared->jobs.pop_front();
    }
    Done done{job.id, Outcome{}};
    try {
      const TaskView view{job.task.job, job.task.key, job.task.payload, job.task.attempt};
      done.outcome = shared->handler->handle(view, *job.token);
    } catch (const std::exception& e) {
      done.outcome = Outcome::failed(std::string("handler threw: ") + e.what(), true);
    } catch (...) {
      done.outcome = Outcome::failed("handler threw a non-standard exception", true);
    }
    {
      const std::lock_guard lock(shared->mutex);
      shared->done.push_back(std::move(done));
    }
    shared->wake();
  }
  {
    const std::lock_guard lock(shared->mutex);
    --shared->alive;
  }
  shared->cv.notify_all();
}

void HandlerPool::submit(std::vector<Job> jobs) {
  if (jobs.empty()) return;
  const auto n = jobs.size();
  {
    const std::lock_guard lock(shared_->mutex);
    for (auto& job : jobs) shared_->jobs.push_back(std::move(job));
  }
  if (n == 1) {
    shared_->cv.notify_one();
  } else {
    shared_->cv.notify_all();
  }
}

std::vector<HandlerPool::Done> HandlerPool::take_done() {
  std::vector<Done> done;
  const std::lock_guard lock(shared_->mutex);
  done.swap(shared_->done);
  return done;
}

int HandlerPool::wake_fd() const noexcept { return shared_->wake_fd; }

void HandlerPool::drain_wake() noexcept {
  std::uint64_t value = 0;
  [[maybe_unused]] const auto n = ::read(shared_->wake_fd, &value, sizeof value);
}

bool HandlerPool::close(std::int64_t join_ms) noexcept {
  if (threads_.empty()) return true;
  bool all_exited = false;
  {
    std::unique_lock lock(shared_->mutex);
    shared_->closing = true;
    shared_->jobs.clear();
    shared_->cv.notify_all();
    all_exited = shared_->cv.wait_for(lock, std::chrono::milliseconds(join_ms),
                                      [&] { return shared_->alive == 0; });
  }
  for (auto& t : threads_) {
    if (all_exited) {
      t.join();
    } else {
      t.detach();
    }
  }
  threads_.clear();
  return all_exited;
}

}  // namespace topicflow
