#include "event_stream.hpp"

#include "api_json.hpp"

#include <algorithm>

namespace topicflow::sink {
namespace {

using nlohmann::json;

json job_event(const std::string& name, const store::StatusCounts& c, bool paused,
               std::int64_t wall_ms) {
  store::JobCounts jc;
  jc.job = name;
  for (const auto status : store::kStatuses) {
    jc.by_status[static_cast<std::size_t>(status)] =
        static_cast<std::uint64_t>(std::max<std::int64_t>(c[status], 0));
  }
  jc.paused = paused;
  auto j = api::job_json(jc);
  j["time_ms"] = wall_ms;
  return j;
}

json sink_event(const Snapshot& s) {
  std::uint64_t slots = 0;
  for (const auto& w : s.workers_seen) slots += w.slots;
  const auto why = health(s, s.steady_ms);
  return json{{"time_ms", s.wall_ms},
              {"workers", s.workers_seen.size()},
              {"slots", slots},
              {"in_transit", s.in_transit},
              {"updates_committed", s.counters.updates},
              {"batches_committed", s.counters.batches},
              {"healthy", why.empty()},
              {"reason", why}};
}

}  // namespace

std::string EventStream::next(const Snapshot& s, std::int64_t now_ms) {
  std::string out;
  if (!started_) {
    out += "retry: 2000\n\n";
    started_ = true;
  }
  version_ = s.version;
  for (const auto& [name, counts] : s.counts) {
    if (job_ && *job_ != name) continue;
    const bool paused = s.paused.contains(name);
    const auto it = sent_.find(name);
    if (it != sent_.end() && it->second.first == counts && it->second.second == paused) continue;
    if (const auto last = sent_ms_.find(name);
        last != sent_ms_.end() && now_ms - last->second < kJobEventMs) {
      continue;  // sent recently: a later call sends the latest counts
    }
    out += "event: job\ndata: " + api::dump(job_event(name, counts, paused, s.wall_ms)) + "\n\n";
    sent_[name] = {counts, paused};
    sent_ms_[name] = now_ms;
  }
  for (auto it = sent_.begin(); it != sent_.end();) {
    if (s.counts.contains(it->first)) {
      ++it;
      continue;
    }
    out += "event: deleted\ndata: " + api::dump(json{{"job", it->first}}) + "\n\n";
    sent_ms_.erase(it->first);
    it = sent_.erase(it);
  }
  if (!sink_sent_ms_ || now_ms - *sink_sent_ms_ >= kSinkEventMs) {
    out += "event: sink\ndata: " + api::dump(sink_event(s)) + "\n\n";
    sink_sent_ms_ = now_ms;
  }
  return out;
}

}  // namespace topicflow::sink
