#pragma once
// The producer role: reads a job's topics, registers them with the sink in acknowledged chunks,
// and optionally follows the job until every topic is terminal.
//
// run() validates the whole input first (nothing is submitted if any line is bad), handshakes
// with the sink, then streams chunks of wire::Submit keeping at most kWindow of them
// unacknowledged, so memory stays bounded whatever the input size. Failures at startup (bad
// input, unreachable sink, acks that never come) throw std::runtime_error / InputError with a
// one-line reason. Not thread-safe; one run() per Producer.

#include <topicflow/curve.hpp>
#include <topicflow/endpoints.hpp>
#include <topicflow/shutdown.hpp>
#include <topicflow/wire.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace topicflow {

class SinkClient;
class InputSource;

struct ProducerConfig {
  Endpoints endpoints;
  Security security;  // CURVE keys (curve.hpp); off by default
  std::string file;   // path, or "-" for stdin; empty only with requeue_failed (requeue a job)
  std::string job = "default";
  std::string format = "auto";  // auto | text | jsonl
  bool wait = false;
  bool requeue_failed = false;
  // A job action instead of a submission (no FILE): pause, resume, cancel or delete --job.
  bool pause = false;
  bool resume = false;
  bool cancel = false;
  bool remove = false;
  std::size_t chunk_size = 500;
  std::int64_t connect_timeout_ms = 10000;
  std::int64_t ack_timeout_ms = 30000;
  std::string progress = "auto";  // auto | bar | lines | none
  int stdin_fd = 0;               // what "-" reads (tests pass a pipe)
};

// What the sink answered for the whole submission (sums of the chunks' acks).
struct SubmitTotals {
  std::uint64_t topics = 0;  // read from the input, duplicates included
  std::uint64_t chunks = 0;
  std::uint64_t resent_chunks = 0;
  std::uint64_t accepted = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t skipped_completed = 0;
  std::uint64_t skipped_failed = 0;
  std::uint64_t requeued = 0;
  std::uint64_t already_queued = 0;
  std::uint64_t rejected = 0;
};

class Producer {
 public:
  // Chunks sent but not yet acknowledged, at most.
  static constexpr std::size_t kWindow = 8;
  // A chunk is cut before it grows past this many bytes of keys and payloads (the sink drops
  // frames over its ZMQ_MAXMSGSIZE, 16 MiB by default).
  static constexpr std::size_t kMaxChunkBytes = 4u << 20;

  // Throws std::invalid_argument on a bad combination (no file without requeue_failed, chunk
  // size 0 or above wire::Limits::max_items, bad format/progress, empty job).
  explicit Producer(ProducerConfig cfg);
  ~Producer();
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // The whole program: validate(), handshake, submit(), then (with wait) follow the job. The
  // process exit status: 0 done (with wait: every topic completed), 1 some topics failed, 130
  // interrupted by `stop`. Throws on failure (see above).
  int run(const StopSignal& stop);

  // Opens the input and reads it all once, checking every line (nothing is sent): a bad line
  // throws InputError ("FILE:LINE: reason") and leaves the job untouched. A no-op without a
  // file (requeue) or when done already. `topicflow run` calls it before it starts anything.
  void validate();
  // Registers the input's topics through `client` (its handshake done) in acknowledged chunks,
  // or requeues the job's failed topics without a file; validates first if not done yet.
  // `tick` runs while it waits for acknowledgements (`topicflow run` supervises its children
  // there); false from it, or `stop`, ends the submission: returns false. Throws when the sink
  // does not acknowledge (see run()). When the connection to the sink is made again (a restarted
  // sink: SinkClient::sink_connections), the chunks not acknowledged yet may have gone down with
  // the old one: they are sent again at once instead of after --ack-timeout-ms.
  bool submit(SinkClient& client, const StopSignal& stop, const std::function<bool()>& tick = {});

  [[nodiscard]] const SubmitTotals& totals() const noexcept { return totals_; }
  [[nodiscard]] const ProducerConfig& config() const noexcept { return cfg_; }

 private:
  bool submit_input(SinkClient& client, const StopSignal& stop, const std::function<bool()>& tick);
  bool requeue(SinkClient& client, const StopSignal& stop);
  bool control(SinkClient& client, const StopSignal& stop);
  // Sends a job request and waits for its ack (one resend after --ack-timeout-ms); nothing when
  // interrupted; throws std::runtime_error when never acknowledged.
  std::optional<wire::Ack> job_request(SinkClient& client, const StopSignal& stop,
                                       const wire::Message& request, wire::AckKind kind,
                                       const char* what);
  void count(const wire::Ack& ack);

  ProducerConfig cfg_;
  SubmitTotals totals_;
  std::unique_ptr<InputSource> input_;  // after validate()
};

}  // namespace topicflow
