#pragma once
// The wire protocol: every message that crosses a ZeroMQ socket, and its msgpack codec.
//
// A message is one msgpack array: [version, type, fields...]. The codec hides msgpack (and
// Boost) behind encode()/decode(); decode() validates shape, sizes, UTF-8 and non-empty keys and
// throws DecodeError with a one-line reason, so every receive loop can log, count and drop.
// Thread-safety: free functions, no shared state.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace topicflow::wire {

inline constexpr std::uint32_t kVersion = 1;

enum class Type : std::uint8_t {
  task = 1,          // sink -> broker -> worker
  submit = 2,        // producer -> sink: register a chunk of topics
  report = 3,        // worker -> sink: started / heartbeat / result updates
  hello = 4,         // producer / cli -> sink: handshake, answered by an Ack on the PUB socket
  requeue = 5,       // producer -> sink: put a job's failed topics back to pending
  broker_hello = 6,  // broker -> sink: "I am broker instance X" (a new X means its queue was lost)
  ack = 7,           // sink PUB: answer to hello / submit / requeue
  progress = 8,      // sink PUB: a job's counts and the sink's counters
  tasks = 9,         // sink -> broker -> worker: several short tasks in one message
  control = 10,      // producer -> sink: pause / resume / cancel / delete a job
  cancel = 11,       // sink PUB `cancel`: workers stop these tasks (their job was cancelled)
};

struct Task {
  std::string job;
  std::string key;
  std::string payload;
  std::uint32_t attempt = 0;  // 1 for the first delivery
  bool operator==(const Task&) const = default;
};

// Several tasks for one worker. The sink sends these only when tasks are short (many started
// per worker slot per millisecond), so per-message costs do not dominate; a worker treats each
// as if it had arrived alone.
struct TaskBatch {
  std::vector<Task> tasks;
  bool operator==(const TaskBatch&) const = default;
};

struct SubmitItem {
  std::string key;
  std::string payload;
  bool operator==(const SubmitItem&) const = default;
};

struct Submit {
  std::string job;
  std::string submission;  // random id of one producer run; also the Ack channel
  std::uint32_t seq = 0;   // chunk number within the submission
  bool requeue_failed = false;
  std::vector<SubmitItem> items;
  bool operator==(const Submit&) const = default;
};

enum class UpdateKind : std::uint8_t {
  started = 1,
  heartbeat = 2,
  completed = 3,  // data = result
  failed = 4,     // data = error; retryable says whether another attempt may help
  released = 5,   // worker is shutting down and gives the task back unfinished
};

struct Update {
  UpdateKind kind = UpdateKind::started;
  std::string job;
  std::string key;
  std::uint32_t attempt = 0;
  bool retryable = false;
  std::string data;
  bool operator==(const Update&) const = default;
};

struct Report {
  std::string worker;  // worker id, for logs and duplicate accounting
  std::vector<Update> updates;
  std::uint32_t slots = 0;  // the worker's --concurrency (sizes the sink's dispatch window)
  bool operator==(const Report&) const = default;
};

struct Hello {
  std::string client;  // the Ack channel
  std::string job;     // if not empty, the sink also publishes this job's progress
  bool operator==(const Hello&) const = default;
};

struct Requeue {
  std::string client{};
  std::string job;
  bool operator==(const Requeue&) const = default;
};

struct BrokerHello {
  std::string instance;
  bool operator==(const BrokerHello&) const = default;
};

// An operator's action on a whole job.
enum class ControlAction : std::uint8_t { pause = 1, resume = 2, cancel = 3, remove = 4 };

struct Control {
  std::string client;  // the Ack channel
  std::string job;
  ControlAction action = ControlAction::pause;
  bool operator==(const Control&) const = default;
};

// Tasks a worker must stop (and drop if they are still queued): the job was cancelled while
// they were in transit or running. Published on the `cancel` topic.
struct CancelledTask {
  std::string job;
  std::string key;
  std::uint32_t attempt = 0;
  bool operator==(const CancelledTask&) const = default;
};
struct Cancel {
  std::vector<CancelledTask> tasks;
  bool operator==(const Cancel&) const = default;
};

enum class AckKind : std::uint8_t { hello = 1, submit = 2, requeue = 3, control = 4 };

struct Ack {
  std::string client{};
  AckKind kind = AckKind::hello;
  std::uint32_t seq = 0;
  std::uint64_t accepted = 0;           // new topics registered pending
  std::uint64_t duplicates = 0;         // keys seen earlier in the same submission
  std::uint64_t skipped_completed = 0;  // already completed: left alone, not rerun
  std::uint64_t requeued = 0;           // failed topics put back to pending
  std::uint64_t already_queued = 0;     // pending/running from an earlier submission
  std::uint64_t rejected = 0;           // invalid items dropped (should not happen)
  std::uint64_t skipped_failed = 0;     // already failed and not requeued (--requeue-failed)
  std::uint64_t changed = 0;            // control: topics the action changed
  std::string error{};                  // control: why the action was refused (empty: done)
  bool operator==(const Ack&) const = default;
};

struct Progress {
  std::string job;
  std::uint64_t pending = 0;
  std::uint64_t running = 0;
  std::uint64_t completed = 0;
  std::uint64_t failed = 0;
  std::uint64_t cancelled = 0;
  bool paused = false;
  // sink-wide counters since the sink started
  std::uint64_t batches = 0;
  std::uint64_t updates = 0;
  std::uint64_t busy_retries = 0;
  std::uint64_t retried = 0;      // retryable failures scheduled for another attempt
  std::uint64_t redelivered = 0;  // expired leases and lost deliveries sent again
  std::uint64_t duplicates = 0;   // deliveries that turned out to be duplicates
  std::uint64_t decode_errors = 0;
  std::int64_t time_ms = 0;   // sink wall clock when published
  std::uint64_t workers = 0;  // distinct workers heard from within the last lease
  bool operator==(const Progress&) const = default;
};

using Message = std::variant<Task, Submit, Report, Hello, Requeue, BrokerHello, Ack, Progress,
                             TaskBatch, Control, Cancel>;

struct Limits {
  std::size_t max_job_bytes = 256;
  std::size_t max_key_bytes = 4096;
  std::size_t max_payload_bytes = 1 << 20;
  std::size_t max_data_bytes = 1 << 20;  // result / error text
  std::size_t max_items = 100000;        // per Submit / Report / TaskBatch
};

class DecodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[nodiscard]] std::string encode(const Message& message);
// Throws DecodeError on anything but a well-formed message of a known type and version.
[[nodiscard]] Message decode(std::span<const std::byte> bytes, const Limits& limits = {});
[[nodiscard]] inline Message decode(std::string_view bytes, const Limits& limits = {}) {
  return decode(std::as_bytes(std::span<const char>(bytes.data(), bytes.size())), limits);
}

[[nodiscard]] std::string_view type_name(const Message& message);
[[nodiscard]] std::string_view to_string(UpdateKind kind);

// PUB topics (first frame of a two-frame event). Subscribers filter by prefix and must still
// check the decoded job/client, since prefixes also match longer names.
[[nodiscard]] std::string ack_topic(std::string_view client);
[[nodiscard]] std::string progress_topic(std::string_view job);
inline constexpr std::string_view kCancelTopic = "cancel";

}  // namespace topicflow::wire
