#pragma once
// The HTTP API's reads, on a read-only connection of its own (never the sink's writer, never
// blocking it: WAL readers see the last commit). Every read is an index seek or a bounded walk:
//   - jobs and their counts come from the `jobs` table: O(jobs);
//   - a page of a job's topics walks the primary key (job, key) from the cursor; a page of
//     failed or cancelled topics walks their partial index. A page of another status filters
//     the walk, and stops after kMaxScan rows with a short page and a cursor to go on from
//     (like DynamoDB's LastEvaluatedKey), so no request scans a whole job;
//   - a topic is one primary key seek; latest errors walk topics_errors.
// One ApiReader per thread at a time (sqlite.hpp); throws SqliteError.

#include <topicflow/sqlite.hpp>
#include <topicflow/store.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace topicflow::api {

struct TopicSummary {
  std::string key;
  std::string status;
  std::int64_t attempts = 0;
  std::int64_t updated_at = 0;
  std::optional<std::string> error;
};

struct Page {
  std::vector<TopicSummary> topics;
  std::optional<std::string> next;  // cursor of the next page; nullopt on the last one
};

struct TopicDetail {
  std::string job;
  std::string key;
  std::string payload;
  std::string status;
  std::int64_t attempts = 0;
  std::optional<std::string> result;
  std::optional<std::string> error;
  std::string worker;
  std::int64_t created_at = 0;
  std::int64_t updated_at = 0;
};

class ApiReader {
 public:
  static constexpr std::int64_t kMaxScan = 20000;  // rows a filtered page walks at most

  explicit ApiReader(const std::string& db_path);

  [[nodiscard]] std::vector<store::JobCounts> jobs();
  [[nodiscard]] std::optional<store::JobCounts> job(std::string_view name);
  // A page of `job`'s topics in key order after `after` (or from `from`, inclusive).
  [[nodiscard]] Page topics(std::string_view job, std::optional<store::Status> status,
                            const std::optional<std::string>& after,
                            const std::optional<std::string>& from, std::int64_t limit);
  [[nodiscard]] std::optional<TopicDetail> topic(std::string_view job, std::string_view key);
  [[nodiscard]] std::vector<store::ErrorRow> errors(std::string_view job, int limit);

 private:
  sqlite::Database db_;
};

}  // namespace topicflow::api
