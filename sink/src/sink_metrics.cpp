#include "sink_metrics.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace topicflow::sink {

void Buckets::observe(double value) {
  std::size_t i = 0;
  while (i < bounds.size() && value > bounds[i]) ++i;
  if (i == bounds.size()) {
    ++overflow;
  } else {
    ++counts[i];
  }
  sum += std::max(value, 0.0);
}

std::uint64_t Buckets::count() const {
  std::uint64_t n = overflow;
  for (auto c : counts) n += c;
  return n;
}

namespace {

void render(MetricsText& m, const Buckets& b, std::string_view name, std::string_view help) {
  m.histogram(name, help, b.bounds, b.counts, b.overflow, b.sum);
}

double d(std::uint64_t v) { return static_cast<double>(v); }

}  // namespace

std::string render_metrics(const Snapshot& s) {
  MetricsText m;
  const auto& c = s.counters;
  m.counter("sink_messages_received_total", "Messages received on the sink socket.", d(c.messages));
  m.counter("sink_updates_committed_total", "Row writes committed (status changes).", d(c.updates));
  m.counter("sink_batches_committed_total", "Transactions committed.", d(c.batches));
  m.counter("sink_busy_retries_total", "Commits retried because the database was busy.",
            d(c.busy_retries));
  m.counter("sink_decode_errors_total", "Bad messages dropped (undecodable or wrong type).",
            d(c.decode_errors));
  m.counter("sink_tasks_dispatched_total", "Tasks sent to the broker.", d(c.dispatched));
  m.counter("sink_tasks_redelivered_total", "Tasks sent again (expired lease, lost in transit).",
            d(c.redelivered));
  m.counter("sink_tasks_retried_total", "Retryable failures scheduled for another attempt.",
            d(c.retried));
  m.counter("sink_leases_expired_total", "Running tasks whose lease expired.", d(c.lease_expired));
  m.counter("sink_duplicate_deliveries_total", "Deliveries found to be duplicates.",
            d(c.duplicates));
  m.counter("sink_curve_refused_total", "CURVE clients refused: key not in --curve-authorized.",
            d(s.curve_refused));
  m.counter("sink_stale_updates_total",
            "Late updates of superseded attempts or finished topics, ignored.", d(c.stale));
  m.counter("sink_cancelled_late_results_total",
            "Results for topics cancelled while they ran, ignored.", d(c.cancelled_late));
  m.counter("sink_guard_refused_total",
            "Writes the SQL guard refused (an internal error: should stay 0).", d(c.guard_refused));
  m.counter("sink_bogus_updates_total",
            "Updates for unknown topics or attempts never handed out, ignored.", d(c.bogus));
  std::vector<std::pair<std::string, double>> samples;
  for (const auto& [job, counts] : s.counts) {
    for (const auto status : store::kStatuses) {
      samples.emplace_back(
          fmt::format("job=\"{}\",status=\"{}\"", label_value(job), store::to_string(status)),
          static_cast<double>(counts[status]));
    }
  }
  m.gauge_family("topics", "Topics by job and status.", samples);
  m.gauge("sink_tasks_in_transit", "Tasks handed to the broker and not yet started.",
          static_cast<double>(s.in_transit));
  m.gauge("sink_buffered_updates", "Updates buffered and not yet committed (queue depth).",
          d(s.buffered));
  m.gauge("sink_workers", "Workers heard from within one lease.", d(s.workers));
  m.gauge("sink_transit_timeout_seconds",
          "A task handed out and not started within this is presumed lost and sent again (follows "
          "the observed start latency, at most --dispatch-timeout-ms).",
          static_cast<double>(s.transit_timeout_ms) / 1000.0);
  m.counter("sink_transit_resent_total",
            "Tasks sent again because they did not start within the transit timeout.",
            d(c.transit_resent));
  m.gauge("sink_synchronous_full",
          "1 with --synchronous full (an fsync per committed batch), 0 with normal.",
          s.synchronous_full ? 1.0 : 0.0);
  m.gauge("sink_database_unavailable",
          "1 while commits fail because the disk is full or on an I/O error (the sink waits).",
          s.unavailable_since_ms > 0 && !s.unavailable_busy ? 1.0 : 0.0);
  m.counter("sink_unavailable_retries_total",
            "Commits retried because the disk was full or on an I/O error.",
            d(c.unavailable_retries));
  render(m, s.batch_size, "sink_batch_size", "Row writes per committed transaction.");
  render(m, s.commit_seconds, "sink_commit_seconds", "Time to apply and commit one batch.");
  return m.str();
}

std::string health(const Snapshot& s, std::int64_t now_steady_ms, std::int64_t busy_grace_ms) {
  if (s.unavailable_since_ms <= 0) return {};
  const auto for_ms = now_steady_ms - s.unavailable_since_ms;
  if (s.unavailable_busy) {
    if (for_ms <= busy_grace_ms) return {};
    return fmt::format("database busy for {} s ({}); holding {} updates", for_ms / 1000,
                       s.unavailable_reason, s.buffered);
  }
  return fmt::format("database unavailable for {} s ({}); holding {} updates", for_ms / 1000,
                     s.unavailable_reason, s.buffered);
}

}  // namespace topicflow::sink
