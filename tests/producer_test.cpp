// Producer and SinkClient, in-process: a fake sink binds a PULL and a PUB on ephemeral loopback
// ports, answers hello / submit / requeue like the real one, and publishes scripted progress.
#include <topicflow/client.hpp>
#include <topicflow/clock.hpp>
#include <topicflow/input.hpp>
#include <topicflow/producer.hpp>
#include <topicflow/random_id.hpp>
#include <topicflow/shutdown.hpp>
#include <topicflow/wire.hpp>

#include "support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <zmq.hpp>

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

namespace tf = topicflow;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

using TempDir = topicflow::testing::TempDir;

tf::wire::Progress progress(std::uint64_t pending, std::uint64_t running, std::uint64_t completed,
                            std::uint64_t failed) {
  tf::wire::Progress p;
  p.job = "";
  p.pending = pending;
  p.running = running;
  p.completed = completed;
  p.failed = failed;
  return p;
}

// A stand-in for the sink: hello -> ack (+ progress), submit -> ack with counts, requeue -> ack.
class FakeSink {
 public:
  struct Options {
    bool answer_hello = true;
    bool answer_submit = true;
    // Acks are held until no submit arrived for this long (0: ack at once), which lets the
    // producer fill its window.
    std::int64_t hold_acks_ms = 0;
    // Submit seqs whose first copy is not acknowledged (the producer must resend them).
    std::set<std::uint32_t> lose_first_ack;
    // When the first copy of this seq arrives, the PULL socket is closed and bound again on the
    // same address, as by a restarted sink: the producer's connection is made again, and what
    // was queued on the old socket is lost.
    std::optional<std::uint32_t> restart_at_seq;
    std::uint64_t requeued = 0;
    // Progress published for the job, one step every 30 ms, from the first hello that follows
    // a submit or requeue (when the producer starts following); the last step repeats.
    std::vector<tf::wire::Progress> steps;
  };

  explicit FakeSink(Options options)
      : options_(std::move(options)),
        pull_(ctx_, zmq::socket_type::pull),
        pub_(ctx_, zmq::socket_type::pub) {
    pull_.set(zmq::sockopt::linger, 0);
    pub_.set(zmq::sockopt::linger, 0);
    pull_.bind("tcp://127.0.0.1:*");
    pub_.bind("tcp://127.0.0.1:*");
    endpoints_.sink = pull_.get(zmq::sockopt::last_endpoint);
    endpoints_.events = pub_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] { loop(); });
  }
  ~FakeSink() {
    stop_ = true;
    thread_.join();
  }
  FakeSink(const FakeSink&) = delete;
  FakeSink& operator=(const FakeSink&) = delete;

  [[nodiscard]] tf::Endpoints endpoints() const { return endpoints_; }
  [[nodiscard]] std::vector<tf::wire::Submit> submits() const {
    std::lock_guard lock(mutex_);
    return submits_;
  }
  [[nodiscard]] int hellos() const {
    std::lock_guard lock(mutex_);
    return hellos_;
  }
  [[nodiscard]] std::vector<tf::wire::Requeue> requeues() const {
    std::lock_guard lock(mutex_);
    return requeues_;
  }
  // The producer submitted and then said hello again: it follows the job.
  [[nodiscard]] bool following() const {
    std::lock_guard lock(mutex_);
    return following_;
  }
  [[nodiscard]] std::size_t max_unacked() const {
    std::lock_guard lock(mutex_);
    return max_unacked_;
  }

 private:
  template <typename T>
  void publish(const std::string& topic, const T& body) {
    zmq::message_t head(topic.data(), topic.size());
    zmq::message_t payload(tf::wire::encode(body));
    (void)pub_.send(head, zmq::send_flags::sndmore);
    (void)pub_.send(payload, zmq::send_flags::none);
  }

  void publish_step(const std::string& job) {
    if (options_.steps.empty() || !following_) return;
    auto p = options_.steps[std::min(step_, options_.steps.size() - 1)];
    p.job = job;
    publish(tf::wire::progress_topic(job), p);
  }

  void ack_submit(const tf::wire::Submit& s) {
    tf::wire::Ack ack{.client = s.submission, .kind = tf::wire::AckKind::submit, .seq = s.seq};
    auto& seen = keys_[s.submission];
    for (const auto& item : s.items) {
      if (seen.insert(item.key).second) {
        ++ack.accepted;
      } else {
        ++ack.duplicates;
      }
    }
    publish(tf::wire::ack_topic(s.submission), ack);
  }

  void handle(tf::wire::Message message) {
    std::lock_guard lock(mutex_);
    if (auto* hello = std::get_if<tf::wire::Hello>(&message)) {
      ++hellos_;
      if (!options_.answer_hello) return;
      publish(tf::wire::ack_topic(hello->client),
              tf::wire::Ack{.client = hello->client, .kind = tf::wire::AckKind::hello});
      if (worked_ && !following_) following_ = true;
      if (!hello->job.empty()) {
        job_ = hello->job;
        publish_step(hello->job);
      }
    } else if (auto* submit = std::get_if<tf::wire::Submit>(&message)) {
      submits_.push_back(*submit);
      worked_ = true;
      last_submit_ms_ = tf::steady_ms();
      if (!options_.answer_submit) return;
      if (options_.restart_at_seq == submit->seq && !restarted_) {
        restarted_ = true;
        restart_ = true;
      }
      if (options_.lose_first_ack.count(submit->seq) > 0 && lost_.insert(submit->seq).second)
        return;
      held_.push_back(*submit);
      max_unacked_ = std::max(max_unacked_, held_.size());
      if (options_.hold_acks_ms == 0) flush_acks();
    } else if (auto* requeue = std::get_if<tf::wire::Requeue>(&message)) {
      requeues_.push_back(*requeue);
      worked_ = true;
      publish(tf::wire::ack_topic(requeue->client),
              tf::wire::Ack{.client = requeue->client,
                            .kind = tf::wire::AckKind::requeue,
                            .requeued = options_.requeued});
    }
  }

  void flush_acks() {
    for (const auto& s : held_) ack_submit(s);
    held_.clear();
  }

  void loop() {
    std::int64_t last_step = 0;
    while (!stop_) {
      zmq::pollitem_t item{pull_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, 10ms);
      zmq::message_t msg;
      while (!restart_ && pull_.recv(msg, zmq::recv_flags::dontwait))
        handle(tf::wire::decode(msg.to_string_view()));
      if (restart_) {
        restart_ = false;
        pull_ = zmq::socket_t(ctx_, zmq::socket_type::pull);
        pull_.set(zmq::sockopt::linger, 0);
        // (the old socket's listener is closed by ZeroMQ's I/O thread, a moment later)
        for (int i = 0;; ++i) {
          try {
            pull_.bind(endpoints_.sink);
            break;
          } catch (const zmq::error_t&) {
            if (i == 200) throw;
            std::this_thread::sleep_for(10ms);
          }
        }
      }
      std::lock_guard lock(mutex_);
      const auto now = tf::steady_ms();
      if (!held_.empty() && now - last_submit_ms_ >= options_.hold_acks_ms) flush_acks();
      if (following_ && now - last_step >= 30) {
        ++step_;
        publish_step(job_);
        last_step = now;
      }
    }
  }

  Options options_;
  zmq::context_t ctx_;
  zmq::socket_t pull_;
  zmq::socket_t pub_;
  tf::Endpoints endpoints_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<tf::wire::Submit> submits_;
  std::vector<tf::wire::Submit> held_;
  std::vector<tf::wire::Requeue> requeues_;
  std::map<std::string, std::set<std::string>> keys_;
  std::set<std::uint32_t> lost_;
  bool restart_ = false;  // (in the loop's thread only)
  bool restarted_ = false;
  std::size_t max_unacked_ = 0;
  std::int64_t last_submit_ms_ = 0;
  int hellos_ = 0;
  bool worked_ = false;
  bool following_ = false;
  std::size_t step_ = 0;
  std::string job_;
  std::thread thread_;
};

tf::ProducerConfig config_for(const FakeSink& sink, const std::string& file) {
  tf::ProducerConfig cfg;
  cfg.endpoints = sink.endpoints();
  cfg.file = file;
  cfg.job = "job-a";
  cfg.progress = "none";
  cfg.connect_timeout_ms = 5000;
  cfg.ack_timeout_ms = 5000;
  return cfg;
}

// Runs the producer on a thread; a run that hangs is stopped after `limit` and reported as -1.
struct RunResult {
  int status = -1;
  std::string error;
  std::int64_t elapsed_ms = 0;
};

RunResult run_producer(tf::Producer& producer, std::chrono::milliseconds limit = 20s) {
  tf::StopSignal stop;
  const auto start = tf::steady_ms();
  auto future = std::async(std::launch::async, [&] { return producer.run(stop); });
  RunResult result;
  if (future.wait_for(limit) != std::future_status::ready) {
    stop.trigger();
    result.error = "timed out";
  }
  try {
    const auto status = future.get();
    if (result.error.empty()) result.status = status;
  } catch (const std::exception& e) {
    result.error = e.what();
  }
  result.elapsed_ms = tf::steady_ms() - start;
  return result;
}

std::string numbered_lines(int n, const std::string& prefix = "topic-") {
  std::string out;
  for (int i = 0; i < n; ++i) out += prefix + std::to_string(i) + "\n";
  return out;
}

// Every item of every distinct chunk (a resent chunk counts once), in seq order.
std::vector<std::string> submitted_keys(const std::vector<tf::wire::Submit>& submits) {
  std::map<std::uint32_t, const tf::wire::Submit*> by_seq;
  for (const auto& s : submits) by_seq.emplace(s.seq, &s);
  std::vector<std::string> keys;
  for (const auto& [seq, s] : by_seq) {
    for (const auto& item : s->items) keys.push_back(item.key);
  }
  return keys;
}

}  // namespace

// ---- Producer ------------------------------------------------------------------------------

TEST(Producer, ChunksCoverEveryKeyOnceInOrder) {
  TempDir dir;
  FakeSink sink({});
  auto cfg = config_for(sink, dir.write("topics.txt", numbered_lines(1234)));
  cfg.chunk_size = 100;
  tf::Producer producer(cfg);
  const auto result = run_producer(producer);
  ASSERT_EQ(result.status, 0) << "error: " << result.error;

  const auto submits = sink.submits();
  ASSERT_EQ(submits.size(), 13u) << "1234 topics in chunks of 100";
  std::set<std::string> submissions;
  for (std::size_t i = 0; i < submits.size(); ++i) {
    EXPECT_EQ(submits[i].seq, i) << "chunks are numbered from 0 in order";
    EXPECT_EQ(submits[i].job, "job-a");
    EXPECT_FALSE(submits[i].requeue_failed);
    EXPECT_LE(submits[i].items.size(), 100u) << "chunk " << i;
    submissions.insert(submits[i].submission);
  }
  EXPECT_EQ(submissions.size(), 1u) << "one submission id per run";
  EXPECT_EQ(submits.front().submission.size(), 16u)
      << "16 hex digits: " << submits.front().submission;

  const auto keys = submitted_keys(submits);
  ASSERT_EQ(keys.size(), 1234u);
  for (int i = 0; i < 1234; ++i)
    ASSERT_EQ(keys[static_cast<std::size_t>(i)], "topic-" + std::to_string(i)) << "at " << i;
  EXPECT_EQ(submits[0].items[0].payload, "topic-0") << "a text line is also the payload";

  const auto& totals = producer.totals();
  EXPECT_EQ(totals.topics, 1234u);
  EXPECT_EQ(totals.chunks, 13u);
  EXPECT_EQ(totals.accepted, 1234u);
  EXPECT_EQ(totals.duplicates, 0u);
}

TEST(Producer, DuplicateKeysArePassedToTheSinkWhichCountsThem) {
  TempDir dir;
  FakeSink sink({});
  auto cfg = config_for(sink, dir.write("topics.jsonl", R"({"key":"a","payload":"1"})"
                                                        "\n"
                                                        R"({"key":"b","payload":{"x":1}})"
                                                        "\n"
                                                        R"({"key":"a","payload":"again"})"
                                                        "\n"
                                                        R"({"key":"a","payload":"thrice"})"
                                                        "\n"));
  cfg.chunk_size = 2;
  tf::Producer producer(cfg);
  const auto result = run_producer(producer);
  ASSERT_EQ(result.status, 0) << "error: " << result.error;
  const auto keys = submitted_keys(sink.submits());
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "b", "a", "a"}))
      << "the producer does not dedupe; the sink does";
  EXPECT_EQ(sink.submits().at(0).items.at(1).payload, R"({"x":1})");
  EXPECT_EQ(producer.totals().accepted, 2u);
  EXPECT_EQ(producer.totals().duplicates, 2u) << "summed from the acks";
}

TEST(Producer, UnackedWindowIsBounded) {
  TempDir dir;
  FakeSink::Options options;
  options.hold_acks_ms = 150;
  FakeSink sink(options);
  auto cfg = config_for(sink, dir.write("topics.txt", numbered_lines(300)));
  cfg.chunk_size = 10;
  tf::Producer producer(cfg);
  const auto result = run_producer(producer);
  ASSERT_EQ(result.status, 0) << "error: " << result.error;
  EXPECT_EQ(sink.submits().size(), 30u);
  EXPECT_LE(sink.max_unacked(), tf::Producer::kWindow) << "never more than the window in flight";
  EXPECT_GE(sink.max_unacked(), 2u) << "the producer pipelines chunks instead of one at a time";
  EXPECT_EQ(submitted_keys(sink.submits()).size(), 300u);
}

TEST(Producer, MalformedFileSubmitsNothing) {
  // No sink at all, and a connect timeout longer than the test allows: a producer that contacted
  // the sink before it read the whole file would still be waiting for it when the test gives up.
  TempDir dir;
  std::string content = numbered_lines(50);
  content += "\n\xFF\xFE broken\n";  // line 52
  content += numbered_lines(10, "late-");
  tf::ProducerConfig cfg;
  cfg.file = dir.write("topics.txt", content);
  cfg.endpoints.sink = "ipc://" + (dir.path() / "no-sink").string();
  cfg.endpoints.events = "ipc://" + (dir.path() / "no-events").string();
  cfg.connect_timeout_ms = 60000;
  cfg.chunk_size = 5;
  cfg.progress = "none";
  tf::Producer producer(cfg);
  const auto result = run_producer(producer, 10s);
  EXPECT_NE(result.error, "timed out") << "the producer went to the sink before validating";
  EXPECT_NE(result.error.find("topics.txt:52: key is not valid UTF-8"), std::string::npos)
      << "error: " << result.error;
  EXPECT_EQ(producer.totals().chunks, 0U) << "nothing was submitted";
}

TEST(Producer, MissingFileIsAOneLineError) {
  TempDir dir;
  FakeSink sink({});
  tf::Producer producer(config_for(sink, (dir.path() / "absent.txt").string()));
  const auto result = run_producer(producer);
  EXPECT_NE(result.error.find("absent.txt: cannot open"), std::string::npos)
      << "error: " << result.error;
  EXPECT_EQ(result.error.find('\n'), std::string::npos) << "one line: " << result.error;
  EXPECT_TRUE(sink.submits().empty());
}

TEST(Producer, UnreachableSinkFailsWithinTheTimeout) {
  TempDir dir;
  tf::ProducerConfig cfg;
  cfg.file = dir.write("topics.txt", "a\n");
  cfg.endpoints.sink = "ipc://" + (dir.path() / "no-sink").string();
  cfg.endpoints.events = "ipc://" + (dir.path() / "no-events").string();
  cfg.connect_timeout_ms = 400;
  cfg.progress = "none";
  tf::Producer producer(cfg);
  const auto result = run_producer(producer, 10s);
  EXPECT_NE(result.error.find("cannot reach the sink at " + cfg.endpoints.sink + " / " +
                              cfg.endpoints.events + " within 0.4 s"),
            std::string::npos)
      << "error: " << result.error;
  EXPECT_GE(result.elapsed_ms, 350) << "gave up too early";
  EXPECT_LT(result.elapsed_ms, 3000) << "gave up too late";
}

TEST(Producer, SinkThatNeverAcksHelloIsUnreachable) {
  TempDir dir;
  FakeSink::Options options;
  options.answer_hello = false;
  FakeSink sink(options);
  auto cfg = config_for(sink, dir.write("topics.txt", "a\n"));
  cfg.connect_timeout_ms = 500;
  tf::Producer producer(cfg);
  const auto result = run_producer(producer, 10s);
  EXPECT_NE(result.error.find("cannot reach the sink"), std::string::npos)
      << "error: " << result.error;
  EXPECT_GE(sink.hellos(), 2) << "hello is repeated every 200 ms";
  EXPECT_TRUE(sink.submits().empty());
}

TEST(Producer, LostAckIsResentOnce) {
  TempDir dir;
  FakeSink::Options options;
  options.lose_first_ack = {1};
  FakeSink sink(options);
  auto cfg = config_for(sink, dir.write("topics.txt", numbered_lines(30)));
  cfg.chunk_size = 10;
  cfg.ack_timeout_ms = 300;
  tf::Producer producer(cfg);
  const auto result = run_producer(producer);
  ASSERT_EQ(result.status, 0) << "error: " << result.error;
  const auto submits = sink.submits();
  EXPECT_EQ(submits.size(), 4u) << "3 chunks, chunk 1 twice";
  EXPECT_EQ(std::count_if(submits.begin(), submits.end(), [](const auto& s) { return s.seq == 1; }),
            2);
  EXPECT_EQ(producer.totals().resent_chunks, 1u);
  EXPECT_EQ(submitted_keys(submits).size(), 30u);
}

// A restarted sink: the producer's connection is made again, and what the old sink had not
// acknowledged is sent again at once (after a handshake with the new one), not after
// --ack-timeout-ms.
TEST(Producer, ChunksADeadSinkDidNotAcknowledgeAreSentAgainWhenItIsRestarted) {
  TempDir dir;
  FakeSink::Options options;
  options.lose_first_ack = {1};  // (went down with the old sink)
  options.restart_at_seq = 1;
  FakeSink sink(options);
  auto cfg = config_for(sink, dir.write("topics.txt", numbered_lines(30)));
  cfg.chunk_size = 10;
  cfg.ack_timeout_ms = 20000;
  tf::Producer producer(cfg);
  const auto result = run_producer(producer);
  ASSERT_EQ(result.status, 0) << "error: " << result.error;
  EXPECT_LT(result.elapsed_ms, 5000) << "not after the 20 s ack timeout";
  const auto submits = sink.submits();
  EXPECT_GE(std::count_if(submits.begin(), submits.end(), [](const auto& s) { return s.seq == 1; }),
            2);
  EXPECT_GE(producer.totals().resent_chunks, 1u);
  EXPECT_GE(sink.hellos(), 2) << "the first handshake, then one with the new sink";
  EXPECT_EQ(submitted_keys(submits).size(), 30u);
}

TEST(Producer, AcksThatNeverComeFailAfterOneResend) {
  TempDir dir;
  FakeSink::Options options;
  options.answer_submit = false;
  FakeSink sink(options);
  auto cfg = config_for(sink, dir.write("topics.txt", numbered_lines(5)));
  cfg.ack_timeout_ms = 250;
  tf::Producer producer(cfg);
  const auto result = run_producer(producer, 10s);
  EXPECT_NE(result.error.find("did not acknowledge chunk 0"), std::string::npos)
      << "error: " << result.error;
  EXPECT_EQ(sink.submits().size(), 2u) << "sent, then resent once";
  EXPECT_GE(result.elapsed_ms, 450) << "two ack timeouts";
}

TEST(Producer, RequeueFailedWithFileMarksChunks) {
  TempDir dir;
  FakeSink sink({});
  auto cfg = config_for(sink, dir.write("topics.txt", numbered_lines(3)));
  cfg.requeue_failed = true;
  tf::Producer producer(cfg);
  const auto result = run_producer(producer);
  ASSERT_EQ(result.status, 0) << "error: " << result.error;
  ASSERT_EQ(sink.submits().size(), 1u);
  EXPECT_TRUE(sink.submits()[0].requeue_failed);
  EXPECT_TRUE(sink.requeues().empty()) << "with a file, no job-wide requeue";
}

TEST(Producer, RequeueFailedWithoutFileRequeuesTheJob) {
  FakeSink::Options options;
  options.requeued = 7;
  FakeSink sink(options);
  auto cfg = config_for(sink, "");
  cfg.requeue_failed = true;
  cfg.job = "nightly";
  tf::Producer producer(cfg);
  const auto result = run_producer(producer);
  ASSERT_EQ(result.status, 0) << "error: " << result.error;
  const auto requeues = sink.requeues();
  ASSERT_EQ(requeues.size(), 1u);
  EXPECT_EQ(requeues[0].job, "nightly");
  EXPECT_TRUE(sink.submits().empty());
  EXPECT_EQ(producer.totals().requeued, 7u) << "taken from the requeue ack";
}

TEST(Producer, BadCombinationsAreRejectedUpFront) {
  tf::ProducerConfig cfg;
  EXPECT_THROW(tf::Producer{cfg}, std::invalid_argument) << "no file and no --requeue-failed";
  cfg.file = "x.txt";
  cfg.chunk_size = 0;
  EXPECT_THROW(tf::Producer{cfg}, std::invalid_argument) << "chunk size 0";
  cfg.chunk_size = 10;
  cfg.job = "";
  EXPECT_THROW(tf::Producer{cfg}, std::invalid_argument) << "empty job";
  cfg.job = "j";
  cfg.format = "csv";
  EXPECT_THROW(tf::Producer{cfg}, std::invalid_argument) << "unknown format";
  cfg.format = "auto";
  cfg.progress = "fancy";
  EXPECT_THROW(tf::Producer{cfg}, std::invalid_argument) << "unknown progress mode";
}

TEST(Producer, WaitReturnsZeroWhenEveryTopicCompleted) {
  TempDir dir;
  FakeSink::Options options;
  options.steps = {progress(10, 0, 0, 0), progress(4, 3, 3, 0), progress(0, 2, 8, 0),
                   progress(0, 0, 10, 0)};
  FakeSink sink(options);
  auto cfg = config_for(sink, dir.write("topics.txt", numbered_lines(10)));
  cfg.wait = true;
  cfg.progress = "lines";
  tf::Producer producer(cfg);
  const auto result = run_producer(producer);
  EXPECT_EQ(result.status, 0) << "error: " << result.error;
}

TEST(Producer, WaitReturnsOneWhenSomeTopicsFailed) {
  TempDir dir;
  FakeSink::Options options;
  options.steps = {progress(10, 0, 0, 0), progress(0, 5, 3, 2), progress(0, 0, 7, 3)};
  FakeSink sink(options);
  auto cfg = config_for(sink, dir.write("topics.txt", numbered_lines(10)));
  cfg.wait = true;
  tf::Producer producer(cfg);
  const auto result = run_producer(producer);
  EXPECT_EQ(result.status, 1) << "3 failed topics; error: " << result.error;
}

TEST(Producer, WaitIsInterruptedByStop) {
  TempDir dir;
  FakeSink::Options options;
  options.steps = {progress(10, 0, 0, 0)};  // never finishes
  FakeSink sink(options);
  auto cfg = config_for(sink, dir.write("topics.txt", numbered_lines(10)));
  cfg.wait = true;
  tf::Producer producer(cfg);
  tf::StopSignal stop;
  auto future = std::async(std::launch::async, [&] { return producer.run(stop); });
  const auto until = tf::steady_ms() + 10000;
  while (!sink.following() && tf::steady_ms() < until) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(sink.following()) << "the producer submitted and follows the job";
  ASSERT_EQ(future.wait_for(0ms), std::future_status::timeout)
      << "must still be waiting for the job (it never finishes)";
  const auto stopped_at = tf::steady_ms();
  stop.trigger();
  ASSERT_EQ(future.wait_for(3s), std::future_status::ready) << "stop must end the wait promptly";
  EXPECT_EQ(future.get(), 130);
  EXPECT_LT(tf::steady_ms() - stopped_at, 1500);
}

// ---- SinkClient ----------------------------------------------------------------------------

TEST(SinkClient, KeepsOnlyItsOwnAcksAndJobDespitePrefixMatches) {
  zmq::context_t ctx;
  zmq::socket_t pull(ctx, zmq::socket_type::pull);
  zmq::socket_t pub(ctx, zmq::socket_type::pub);
  pull.set(zmq::sockopt::linger, 0);
  pub.set(zmq::sockopt::linger, 0);
  pull.bind("tcp://127.0.0.1:*");
  pub.bind("tcp://127.0.0.1:*");
  tf::Endpoints endpoints;
  endpoints.sink = pull.get(zmq::sockopt::last_endpoint);
  endpoints.events = pub.get(zmq::sockopt::last_endpoint);
  tf::SinkClient client(ctx, endpoints, "abc", "job");
  tf::StopSignal stop;

  auto send = [&](const std::string& topic, const std::string& body) {
    zmq::message_t head(topic.data(), topic.size());
    zmq::message_t payload(body.data(), body.size());
    (void)pub.send(head, zmq::send_flags::sndmore);
    (void)pub.send(payload, zmq::send_flags::none);
  };
  auto other_progress = progress(1, 0, 0, 0);
  other_progress.job = "job2";
  const tf::wire::Ack ours{.client = "abc", .kind = tf::wire::AckKind::submit, .seq = 42};
  std::optional<tf::wire::Message> got;
  // PUB drops what it sends before the subscription arrives: repeat until something gets through.
  for (int i = 0; i < 100 && !got; ++i) {
    send("ack/abcd", tf::wire::encode(tf::wire::Ack{
                         .client = "abcd", .kind = tf::wire::AckKind::submit, .seq = 1}));
    send("progress/job2", tf::wire::encode(other_progress));
    send("ack/abc", "\xC1 not msgpack");
    send("ack/abc", tf::wire::encode(ours));
    got = client.next_event(50ms, stop);
  }
  ASSERT_TRUE(got.has_value()) << "nothing arrived in 100 rounds";
  const auto* ack = std::get_if<tf::wire::Ack>(&*got);
  ASSERT_NE(ack, nullptr) << "got a " << tf::wire::type_name(*got);
  EXPECT_EQ(ack->client, "abc");
  EXPECT_EQ(ack->seq, 42u) << "the ack for client abcd must be dropped";
  EXPECT_GE(client.bad_events(), 1u) << "the undecodable body is counted";
}

TEST(SinkClient, HandshakeSucceedsWhenTheSinkAnswers) {
  FakeSink sink({});
  zmq::context_t ctx;
  tf::SinkClient client(ctx, sink.endpoints(), tf::random_id(), "j");
  tf::StopSignal stop;
  const auto start = tf::steady_ms();
  EXPECT_TRUE(client.handshake(5s, stop));
  EXPECT_LT(tf::steady_ms() - start, 3000) << "handshake took too long";
  EXPECT_GE(sink.hellos(), 1);
}

TEST(SinkClient, HandshakeReturnsFalseWhenStopped) {
  TempDir dir;
  zmq::context_t ctx;
  tf::Endpoints endpoints;
  endpoints.sink = "ipc://" + (dir.path() / "s").string();
  endpoints.events = "ipc://" + (dir.path() / "e").string();
  tf::SinkClient client(ctx, endpoints, "id", "");
  tf::StopSignal stop;
  stop.trigger();
  EXPECT_FALSE(client.handshake(5s, stop));
}

// ---- ProgressView --------------------------------------------------------------------------

TEST(ProgressView, BarShowsCountsPercentRateEtaAndFailures) {
  const auto p = progress(1626, 20, 1231, 3);  // 2880 topics, 1234 done
  const auto bar = tf::ProgressView::render_bar(p, 1234.4);
  // 1234/2880 = 42.8%: 8 of 20 cells; (2880 - 1234) / 1234.4 = 1.33 s
  EXPECT_EQ(bar, "[########............] 1234/2880  42.8%  1,234/s  ETA 0:01  (failed 3)") << bar;
  const auto clean = tf::ProgressView::render_bar(progress(0, 0, 10, 0), 0.0);
  EXPECT_EQ(clean, "[####################] 10/10  100.0%  0/s  ETA -:--")
      << "no failures, no rate yet: " << clean;
  const auto empty = tf::ProgressView::render_bar(progress(0, 0, 0, 0), 0.0);
  EXPECT_EQ(empty.substr(0, 22), "[####################]") << "an empty job is complete: " << empty;
}

TEST(ProgressView, RateAndEtaFromTheSecondUpdate) {
  tf::ManualClock clock;
  tf::ProgressView view(tf::ProgressView::Mode::none, 2000, clock);
  view.update(progress(288, 0, 0, 0));
  EXPECT_EQ(view.rate(), 0.0) << "one update: nothing to measure yet";
  clock.advance(100);
  const auto second = progress(230, 20, 38, 0);
  view.update(second);
  EXPECT_DOUBLE_EQ(view.rate(), 380.0) << "38 topics in 100 ms";
  EXPECT_NE(tf::ProgressView::render_bar(second, view.rate()).find("380/s  ETA 0:01"),
            std::string::npos)
      << tf::ProgressView::render_bar(second, view.rate());
  clock.advance(10);
  view.update(progress(220, 20, 48, 0));
  EXPECT_DOUBLE_EQ(view.rate(), 48 * 1000.0 / 110) << "the slope since the first update";
  // Seconds later the rate is that of the last few seconds, not of the whole run.
  clock.advance(5000);
  view.update(progress(120, 20, 148, 0));
  clock.advance(1000);
  view.update(progress(20, 20, 248, 0));
  EXPECT_DOUBLE_EQ(view.rate(), 100.0) << "100 topics in the last second";
}

TEST(ProgressView, LineForLogsAndPipes) {
  EXPECT_EQ(tf::ProgressView::render_line(progress(1626, 20, 1231, 3), 1234.4),
            "progress: 1231/2880 completed, 3 failed, 20 running, 1234/s");
}

TEST(ProgressView, NumberFormatting) {
  EXPECT_EQ(tf::ProgressView::group_thousands(0), "0");
  EXPECT_EQ(tf::ProgressView::group_thousands(999), "999");
  EXPECT_EQ(tf::ProgressView::group_thousands(1000), "1,000");
  EXPECT_EQ(tf::ProgressView::group_thousands(1234567), "1,234,567");
  EXPECT_EQ(tf::ProgressView::format_eta(3.2), "0:03");
  EXPECT_EQ(tf::ProgressView::format_eta(725), "12:05");
  EXPECT_EQ(tf::ProgressView::format_eta(3723), "1:02:03");
  EXPECT_EQ(tf::ProgressView::format_eta(-1), "-:--");
}

TEST(ProgressView, ModesParseAndAutomaticResolves) {
  EXPECT_EQ(tf::ProgressView::parse_mode("none"), tf::ProgressView::Mode::none);
  EXPECT_EQ(tf::ProgressView::parse_mode("bar"), tf::ProgressView::Mode::bar);
  EXPECT_THROW((void)tf::ProgressView::parse_mode("fancy"), std::invalid_argument);
  tf::ProgressView view(tf::ProgressView::Mode::automatic);
  EXPECT_NE(view.mode(), tf::ProgressView::Mode::automatic) << "automatic resolves to bar or lines";
  EXPECT_EQ(view.mode(),
            ::isatty(2) != 0 ? tf::ProgressView::Mode::bar : tf::ProgressView::Mode::lines);
}
