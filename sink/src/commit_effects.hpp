#pragma once
// What a committed batch changes beyond its rows, once COMMIT went through (effects.hpp): the
// sink's counters, the ready queue's paused and deleted jobs, the progress's pause flags, and
// the answers (HTTP calls through their promises; acks for ZeroMQ clients returned, for the
// loop to publish). A commit that failed never gets here. Pure over the objects given (no
// socket, no database, no clock). Not thread-safe (the loop's thread).

#include "batch.hpp"
#include "effects.hpp"
#include "job_progress.hpp"
#include "ready_queue.hpp"

#include <topicflow/sink.hpp>
#include <topicflow/wire.hpp>

#include <string>
#include <vector>

namespace topicflow::sink {

// Adds a commit's counts to the sink's counters (one more batch when it wrote updates).
void add_counters(SinkCounters& counters, const Effects& fx);

// What job requests changed in memory: paused, resumed, cancelled and deleted jobs in the ready
// queue, and the pause flags and deleted jobs in the progress. (Telling workers to stop the
// tasks of a cancelled job, fx.cancelled_tasks, is the caller's.)
void apply_job_effects(const Effects& fx, ReadyQueue& queue, JobProgress& progress);

// Answers the batch's job requests with their results, in order: an HTTP call through its
// promise; for a ZeroMQ client, an Ack (kind requeue or control) in the vector returned.
[[nodiscard]] std::vector<wire::Ack> answer_requests(
    const std::vector<JobRequest>& requests, const std::vector<Effects::RequestResult>& results);

// Answers the batch's HTTP submissions with their acks' counts (after the commit).
void answer_api_submits(Batch& batch);

// Answers every HTTP call of a batch that will never be committed: `status` and `reason`.
void refuse_api_calls(const Batch& batch, int status, const std::string& reason);

// The rows a commit wrote, by new status: "pending 2, completed 5" ("" when none).
[[nodiscard]] std::string written_summary(const Effects& fx);

}  // namespace topicflow::sink
