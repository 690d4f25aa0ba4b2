// After COMMIT: counters, the job requests' effects on the ready queue and the progress, and the
// answers to HTTP calls and ZeroMQ clients.
#include "commit_effects.hpp"

#include "api_inbox.hpp"
#include "batch.hpp"
#include "effects.hpp"
#include "job_progress.hpp"
#include "ready_queue.hpp"

#include <topicflow/sink.hpp>
#include <topicflow/store.hpp>
#include <topicflow/wire.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

namespace topicflow::sink {
namespace {

using store::Status;

// An HTTP call and the future its answer arrives on.
struct Call {
  std::shared_ptr<ApiCall> call = std::make_shared<ApiCall>();
  std::future<ApiResult> result = call->result.get_future();

  [[nodiscard]] ApiResult answer() {
    EXPECT_EQ(result.wait_for(std::chrono::seconds(0)), std::future_status::ready)
        << "not answered";
    return result.get();
  }
};

TEST(CommitEffects, CountersAddUpAndABatchCountsWhenItWroteUpdates) {
  SinkCounters counters;
  counters.updates = 10;
  Effects fx;
  add_counters(counters, fx);
  EXPECT_EQ(counters.batches, 0U) << "a commit of requests or acks alone is no batch";
  fx.updates = 3;
  fx.redelivered = 1;
  fx.retried = 2;
  fx.duplicates = 3;
  fx.stale = 4;
  fx.bogus = 5;
  fx.guard_refused = 6;
  fx.lease_expired = 7;
  fx.cancelled_late = 8;
  add_counters(counters, fx);
  EXPECT_EQ(counters.batches, 1U);
  EXPECT_EQ(counters.updates, 13U);
  EXPECT_EQ(counters.redelivered, 1U);
  EXPECT_EQ(counters.retried, 2U);
  EXPECT_EQ(counters.duplicates, 3U);
  EXPECT_EQ(counters.stale, 4U);
  EXPECT_EQ(counters.bogus, 5U);
  EXPECT_EQ(counters.guard_refused, 6U);
  EXPECT_EQ(counters.lease_expired, 7U);
  EXPECT_EQ(counters.cancelled_late, 8U);
}

TEST(CommitEffects, JobRequestsChangeTheQueueAndTheProgress) {
  ReadyQueue queue;
  JobProgress progress;
  queue.push(1, 1, "paused");
  queue.push(2, 2, "cancelled");
  queue.push(3, 3, "removed");
  queue.push(4, 4, "resumed");
  queue.pause("resumed");
  queue.pause("removed");
  progress.set("removed", store::StatusCounts{});
  progress.set_paused("removed", true);
  progress.set_paused("resumed", true);
  (void)progress.take_due(0, true);

  Effects fx;
  fx.paused = {{"paused", true}, {"resumed", false}};
  fx.cancelled_jobs = {"cancelled"};
  fx.removed_jobs = {"removed"};
  apply_job_effects(fx, queue, progress);

  EXPECT_TRUE(queue.paused("paused"));
  EXPECT_TRUE(progress.paused("paused"));
  EXPECT_FALSE(queue.paused("resumed"));
  EXPECT_FALSE(progress.paused("resumed"));
  EXPECT_FALSE(queue.paused("removed")) << "a name used again starts unpaused";
  EXPECT_FALSE(progress.paused("removed"));
  EXPECT_FALSE(progress.counts().contains("removed"));
  std::vector<std::string> popped;
  while (const auto item = queue.pop_due(100)) popped.push_back(queue.job_name(item->job));
  EXPECT_EQ(popped, std::vector<std::string>{"resumed"})
      << "paused set aside, cancelled and removed jobs' rows dropped";
}

TEST(CommitEffects, RequestsAreAnsweredThroughTheirCallOrByAnAck) {
  Call http;
  std::vector<JobRequest> requests{
      {JobRequest::Kind::cancel, "j", {}, http.call},
      {JobRequest::Kind::requeue_failed, "j", "producer-1"},
      {JobRequest::Kind::pause, "j", "producer-2"},
      {JobRequest::Kind::resume, "j", {}},  // (no one to answer)
  };
  std::vector<Effects::RequestResult> results{
      {.status = 200, .error = {}, .changed = 4},
      {.status = 200, .error = {}, .changed = 2},
      {.status = 409, .error = "job j is cancelled", .changed = 0},
      {.status = 200, .error = {}, .changed = 0},
  };
  const auto acks = answer_requests(requests, results);

  const auto answer = http.answer();
  EXPECT_EQ(answer.status, 200);
  EXPECT_EQ(answer.counts.changed, 4U);
  ASSERT_EQ(acks.size(), 2U);
  EXPECT_EQ(acks[0].client, "producer-1");
  EXPECT_EQ(acks[0].kind, wire::AckKind::requeue);
  EXPECT_EQ(acks[0].requeued, 2U);
  EXPECT_EQ(acks[1].client, "producer-2");
  EXPECT_EQ(acks[1].kind, wire::AckKind::control);
  EXPECT_EQ(acks[1].error, "job j is cancelled");
}

TEST(CommitEffects, ApiSubmitsGetTheirAcksCounts) {
  Batch batch;
  Call http;
  const auto ack = batch.add_ack(wire::Ack{.kind = wire::AckKind::submit});
  batch.acks()[static_cast<std::size_t>(ack)].accepted = 3;
  batch.add_api_submit(ack, http.call);
  answer_api_submits(batch);
  const auto answer = http.answer();
  EXPECT_EQ(answer.status, 200);
  EXPECT_EQ(answer.counts.accepted, 3U);
}

TEST(CommitEffects, CallsOfABatchNeverCommittedAreRefused) {
  Batch batch;
  Call submit;
  Call action;
  batch.add_api_submit(batch.add_ack(wire::Ack{.kind = wire::AckKind::submit}), submit.call);
  batch.add_request(JobRequest{JobRequest::Kind::pause, "j", {}, action.call});
  batch.add_request(JobRequest{JobRequest::Kind::pause, "j", "producer-1"});
  refuse_api_calls(batch, 503, "stopping");
  for (auto* call : {&submit, &action}) {
    const auto answer = call->answer();
    EXPECT_EQ(answer.status, 503);
    EXPECT_EQ(answer.error, "stopping");
  }
}

TEST(CommitEffects, WrittenSummaryListsStatusesInOrder) {
  Effects fx;
  EXPECT_EQ(written_summary(fx), "");
  fx.written[static_cast<std::size_t>(Status::completed)] = 5;
  fx.written[static_cast<std::size_t>(Status::pending)] = 2;
  EXPECT_EQ(written_summary(fx), "pending 2, completed 5");
}

}  // namespace
}  // namespace topicflow::sink
