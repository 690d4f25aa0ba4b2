#include <topicflow/worker_metrics.hpp>

#include <chrono>
#include <utility>

namespace topicflow {
namespace {

// Times each handle() call; otherwise the wrapped handler, unchanged.
class TimedHandler final : public Handler {
 public:
  TimedHandler(std::unique_ptr<Handler> inner, std::shared_ptr<Histogram> durations)
      : inner_(std::move(inner)), durations_(std::move(durations)) {}

  // An exception is timed too (the worker reports it as a retryable failure).
  Outcome handle(const TaskView& task, const CancelToken& cancel) override {
    const auto start = std::chrono::steady_clock::now();
    const auto observe = [&] {
      durations_->observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    };
    try {
      auto outcome = inner_->handle(task, cancel);
      observe();
      return outcome;
    } catch (...) {
      observe();
      throw;
    }
  }
  [[nodiscard]] std::string describe() const override { return inner_->describe(); }

 private:
  std::unique_ptr<Handler> inner_;
  std::shared_ptr<Histogram> durations_;
};

}  // namespace

WorkerMetrics::WorkerMetrics() : durations_(std::make_shared<Histogram>(duration_buckets())) {}

std::vector<double> WorkerMetrics::duration_buckets() {
  return {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
}

std::unique_ptr<Handler> WorkerMetrics::instrument(std::unique_ptr<Handler> handler) const {
  return std::make_unique<TimedHandler>(std::move(handler), durations_);
}

std::string WorkerMetrics::render(const Worker& worker, const WorkerConfig& config) const {
  const auto c = worker.counters();
  auto d = [](std::uint64_t v) { return static_cast<double>(v); };
  MetricsText m;
  m.gauge_family("worker_info", "Identity of this worker: its id and handler spec (value 1).",
                 {{"worker=\"" + label_value(worker.id()) + "\",handler=\"" +
                       label_value(config.handler) + "\"",
                   1}});
  m.counter("worker_tasks_received_total", "Tasks taken from the broker.", d(c.received));
  m.counter("worker_tasks_completed_total", "Tasks reported completed.", d(c.completed));
  m.counter("worker_tasks_failed_total", "Tasks reported failed (retryable or permanent).",
            d(c.failed));
  m.counter("worker_tasks_released_total", "Tasks given back unfinished at shutdown.",
            d(c.released));
  m.counter("worker_bad_messages_total",
            "Frames from the broker dropped: undecodable or not a task.", d(c.bad_messages));
  m.counter("worker_reports_sent_total", "Report messages sent to the sink.", d(c.reports));
  m.counter("worker_updates_sent_total", "Status updates inside those reports.", d(c.updates));
  m.gauge("worker_tasks_in_flight", "Tasks running now.", d(c.in_flight));
  m.gauge("worker_tasks_in_flight_max", "The most tasks ever running at once.", d(c.max_in_flight));
  m.gauge("worker_slots", "Tasks this worker runs at once (--concurrency).",
          static_cast<double>(config.concurrency));
  durations_->render(m, "worker_task_duration_seconds",
                     "Time the handler spent on one task, any outcome.");
  return m.str();
}

}  // namespace topicflow
