// HandlerPool (worker/src/handler_pool.cpp): the worker's handler threads, without sockets
// (label unit). Waits are bounded waits for a condition, never fixed sleeps.
#include <topicflow/clock.hpp>
#include <topicflow/handler_pool.hpp>

#include <gtest/gtest.h>

#include <poll.h>
#include <algorithm>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>

namespace topicflow {
namespace {

class FnHandler final : public Handler {
 public:
  explicit FnHandler(std::function<Outcome(const TaskView&, const CancelToken&)> fn)
      : fn_(std::move(fn)) {}
  Outcome handle(const TaskView& t, const CancelToken& c) override { return fn_(t, c); }
  std::string describe() const override { return "test"; }

 private:
  std::function<Outcome(const TaskView&, const CancelToken&)> fn_;
};

HandlerPool::Job job(std::uint64_t id, const std::string& key) {
  return HandlerPool::Job{id, wire::Task{"job", key, "payload-" + key, 1},
                          std::make_shared<CancelToken>()};
}

// Collects outcomes until `n` arrived (or 5 s), waiting on the wake descriptor as the worker does.
std::map<std::uint64_t, Outcome> collect(HandlerPool& pool, std::size_t n) {
  std::map<std::uint64_t, Outcome> outcomes;
  const auto until = steady_ms() + 5000;
  while (outcomes.size() < n && steady_ms() < until) {
    pollfd fd{pool.wake_fd(), POLLIN, 0};
    (void)::poll(&fd, 1, 50);
    pool.drain_wake();
    for (auto& d : pool.take_done()) outcomes.emplace(d.id, std::move(d.outcome));
  }
  return outcomes;
}

TEST(HandlerPool, EveryJobsOutcomeComesBackUnderItsId) {
  HandlerPool pool(std::make_shared<FnHandler>([](const TaskView& t, const CancelToken&) {
                     return Outcome::completed(std::string(t.payload));
                   }),
                   3);
  std::vector<HandlerPool::Job> jobs;
  for (std::uint64_t i = 1; i <= 20; ++i) jobs.push_back(job(i, "k" + std::to_string(i)));
  pool.submit(std::move(jobs));
  const auto outcomes = collect(pool, 20);
  ASSERT_EQ(outcomes.size(), 20U);
  for (const auto& [id, outcome] : outcomes) {
    EXPECT_TRUE(outcome.ok()) << id;
    EXPECT_EQ(outcome.data, "payload-k" + std::to_string(id));
  }
  EXPECT_TRUE(pool.close()) << "idle threads exit and are joined";
}

TEST(HandlerPool, RunsAtMostOneJobPerThread) {
  std::mutex mutex;
  std::condition_variable cv;
  int running = 0;
  int peak = 0;
  HandlerPool pool(std::make_shared<FnHandler>([&](const TaskView&, const CancelToken&) {
                     std::unique_lock lock(mutex);
                     peak = std::max(peak, ++running);
                     cv.notify_all();
                     cv.wait_for(lock, std::chrono::seconds(2), [&] { return peak >= 2; });
                     --running;
                     return Outcome::completed();
                   }),
                   2);
  std::vector<HandlerPool::Job> jobs;
  for (std::uint64_t i = 1; i <= 6; ++i) jobs.push_back(job(i, std::to_string(i)));
  pool.submit(std::move(jobs));
  EXPECT_EQ(collect(pool, 6).size(), 6U);
  const std::lock_guard lock(mutex);
  EXPECT_EQ(peak, 2) << "two threads: two handlers at once, never more";
}

TEST(HandlerPool, AThrowingHandlerIsARetryableFailure) {
  HandlerPool pool(
      std::make_shared<FnHandler>([](const TaskView& t, const CancelToken&) -> Outcome {
        if (t.key == "std") throw std::runtime_error("kaboom");
        throw 42;
      }),
      1);
  std::vector<HandlerPool::Job> jobs;
  jobs.push_back(job(1, "std"));
  jobs.push_back(job(2, "other"));
  pool.submit(std::move(jobs));
  auto outcomes = collect(pool, 2);
  ASSERT_EQ(outcomes.size(), 2U);
  EXPECT_FALSE(outcomes[1].ok());
  EXPECT_TRUE(outcomes[1].retryable);
  EXPECT_EQ(outcomes[1].data, "handler threw: kaboom");
  EXPECT_FALSE(outcomes[2].ok());
  EXPECT_TRUE(outcomes[2].retryable);
  EXPECT_EQ(outcomes[2].data, "handler threw a non-standard exception");
}

TEST(HandlerPool, CloseAbandonsAHandlerThatIgnoresItsToken) {
  // Shared with the handler, which outlives the pool on its detached thread.
  struct Deaf {
    std::mutex mutex;
    std::condition_variable cv;
    bool entered = false;
    bool release = false;
    bool left = false;
  };
  const auto deaf = std::make_shared<Deaf>();
  {
    HandlerPool pool(std::make_shared<FnHandler>([deaf](const TaskView&, const CancelToken&) {
                       std::unique_lock lock(deaf->mutex);
                       deaf->entered = true;
                       deaf->cv.notify_all();
                       deaf->cv.wait_for(lock, std::chrono::seconds(10),
                                         [&] { return deaf->release; });
                       deaf->left = true;
                       deaf->cv.notify_all();
                       return Outcome::completed();
                     }),
                     1);
    std::vector<HandlerPool::Job> jobs;
    jobs.push_back(job(1, "deaf"));
    pool.submit(std::move(jobs));
    {
      std::unique_lock lock(deaf->mutex);
      ASSERT_TRUE(deaf->cv.wait_for(lock, std::chrono::seconds(5), [&] { return deaf->entered; }));
    }
    const auto t0 = steady_ms();
    EXPECT_FALSE(pool.close(50)) << "the handler is still running: its thread is detached";
    EXPECT_LT(steady_ms() - t0, 2000) << "close() waited for a handler that does not return";
  }
  // The abandoned thread finishes later, without touching the destroyed pool.
  std::unique_lock lock(deaf->mutex);
  deaf->release = true;
  deaf->cv.notify_all();
  EXPECT_TRUE(deaf->cv.wait_for(lock, std::chrono::seconds(5), [&] { return deaf->left; }));
}

}  // namespace
}  // namespace topicflow
