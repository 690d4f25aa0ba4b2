#pragma once
// Job progress: the count of topics per status for every job, kept up to date from each
// commit's changes, and which jobs are due for a progress event (published at most every
// kIntervalMs per job, and at once when a job has nothing pending or running left, so a
// follower never misses the final state). Pure bookkeeping: time comes in as `now` (steady
// ms). Not thread-safe.

#include <topicflow/sink.hpp>
#include <topicflow/store.hpp>
#include <topicflow/wire.hpp>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace topicflow::sink {

using JobCounts = std::map<std::string, store::StatusCounts, std::less<>>;

class JobProgress {
 public:
  static constexpr std::int64_t kIntervalMs = 100;

  // The counts a commit changed, added to the current ones; jobs that moved become dirty.
  void add(const JobCounts& delta);
  void set(std::string job, store::StatusCounts counts) { counts_[std::move(job)] = counts; }
  // A job's pause flag changed, or the job was deleted: both dirty it (its followers hear it).
  void set_paused(std::string_view job, bool paused);
  void remove(std::string_view job);
  [[nodiscard]] bool paused(std::string_view job) const { return paused_.contains(job); }
  [[nodiscard]] const std::set<std::string, std::less<>>& paused_jobs() const noexcept {
    return paused_;
  }

  [[nodiscard]] const JobCounts& counts() const noexcept { return counts_; }
  [[nodiscard]] store::StatusCounts counts(std::string_view job) const;
  // Topics pending or running over all jobs.
  [[nodiscard]] std::int64_t unfinished() const;

  [[nodiscard]] bool has_dirty() const noexcept { return !dirty_.empty(); }
  // The dirty jobs whose event is due at `now` (all of them with `force`); they are then
  // considered published.
  [[nodiscard]] std::vector<std::string> take_due(std::int64_t now, bool force);
  // `job`'s event was published at `now` outside take_due (an answer to a hello).
  void published(const std::string& job, std::int64_t now) { last_published_[job] = now; }

  // The progress event of `job`.
  [[nodiscard]] wire::Progress progress(const std::string& job, const SinkCounters& counters,
                                        std::int64_t wall_ms, std::uint64_t workers) const;

 private:
  JobCounts counts_;
  std::set<std::string, std::less<>> paused_;
  std::set<std::string, std::less<>> dirty_;
  std::unordered_map<std::string, std::int64_t> last_published_;
};

}  // namespace topicflow::sink
