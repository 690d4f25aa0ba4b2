#pragma once
// Prometheus metrics of a worker process (topicflow-worker --metrics-port, or your own worker
// binary): the Worker's counters, the in-flight gauge, and a histogram of how long the handler
// took per task. Every name is listed in docs/metrics.md.
//
// Owns the task-duration histogram, shared with the handlers it instruments (a wrapped handler
// may outlive this object: abandoned handler threads hold it). Thread-safe: render() may run on
// the metrics server's thread while handlers run on the worker's.

#include <topicflow/handler.hpp>
#include <topicflow/metrics.hpp>
#include <topicflow/worker.hpp>

#include <memory>
#include <string>
#include <vector>

namespace topicflow {

class WorkerMetrics {
 public:
  WorkerMetrics();

  // Upper bounds (seconds) of the task duration histogram's buckets.
  [[nodiscard]] static std::vector<double> duration_buckets();

  // Wraps `handler` so that the duration of every handle() call (whatever its outcome, and an
  // exception too) is observed. Pass the result to the Worker.
  [[nodiscard]] std::unique_ptr<Handler> instrument(std::unique_ptr<Handler> handler) const;

  // The text exposition of `worker`'s counters and the durations; `config` is the one the
  // worker was made with (for its slots and handler spec).
  [[nodiscard]] std::string render(const Worker& worker, const WorkerConfig& config) const;

 private:
  std::shared_ptr<Histogram> durations_;
};

}  // namespace topicflow
