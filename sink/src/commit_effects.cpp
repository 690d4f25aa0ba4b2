#include "commit_effects.hpp"

#include <topicflow/store.hpp>

#include <fmt/format.h>

#include <cstddef>
#include <utility>

namespace topicflow::sink {

void add_counters(SinkCounters& counters, const Effects& fx) {
  counters.updates += fx.updates;
  counters.redelivered += fx.redelivered;
  counters.retried += fx.retried;
  counters.duplicates += fx.duplicates;
  counters.stale += fx.stale;
  counters.bogus += fx.bogus;
  counters.guard_refused += fx.guard_refused;
  counters.lease_expired += fx.lease_expired;
  counters.cancelled_late += fx.cancelled_late;
  if (fx.updates > 0) ++counters.batches;
}

void apply_job_effects(const Effects& fx, ReadyQueue& queue, JobProgress& progress) {
  for (const auto& [job, paused] : fx.paused) {
    if (paused) {
      queue.pause(job);
    } else {
      queue.resume(job);
    }
    progress.set_paused(job, paused);
  }
  for (const auto job : fx.cancelled_jobs) queue.remove_job(job);
  for (const auto job : fx.removed_jobs) {
    queue.resume(job);  // (a name used again starts unpaused, as the table says)
    queue.remove_job(job);
    progress.remove(job);
  }
}

std::vector<wire::Ack> answer_requests(const std::vector<JobRequest>& requests,
                                       const std::vector<Effects::RequestResult>& results) {
  std::vector<wire::Ack> acks;
  for (std::size_t i = 0; i < requests.size() && i < results.size(); ++i) {
    const auto& request = requests[i];
    const auto& result = results[i];
    if (request.call) {
      ApiResult api_result{result.status, result.error, {}};
      api_result.counts.changed = result.changed;
      answer(*request.call, std::move(api_result));
      continue;
    }
    if (request.client.empty()) continue;
    wire::Ack ack{.client = request.client};
    if (request.kind == JobRequest::Kind::requeue_failed) {
      ack.kind = wire::AckKind::requeue;
      ack.requeued = result.changed;
    } else {
      ack.kind = wire::AckKind::control;
      ack.changed = result.changed;
      ack.error = result.error;
    }
    acks.push_back(std::move(ack));
  }
  return acks;
}

void answer_api_submits(Batch& batch) {
  for (const auto& [ack, call] : batch.api_submits()) {
    answer(*call, ApiResult{200, {}, batch.acks()[static_cast<std::size_t>(ack)]});
  }
}

void refuse_api_calls(const Batch& batch, int status, const std::string& reason) {
  for (const auto& [ack, call] : batch.api_submits()) {
    answer(*call, ApiResult{status, reason, {}});
  }
  for (const auto& request : batch.requests()) {
    if (request.call) answer(*request.call, ApiResult{status, reason, {}});
  }
}

std::string written_summary(const Effects& fx) {
  std::string detail;
  for (const auto status : store::kStatuses) {
    const auto n = fx.written[static_cast<std::size_t>(status)];
    if (n == 0) continue;
    if (!detail.empty()) detail += ", ";
    detail += fmt::format("{} {}", store::to_string(status), n);
  }
  return detail;
}

}  // namespace topicflow::sink
