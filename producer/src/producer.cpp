#include <topicflow/client.hpp>
#include <topicflow/clock.hpp>
#include <topicflow/input.hpp>
#include <topicflow/producer.hpp>
#include <topicflow/random_id.hpp>
#include <topicflow/utf8.hpp>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <optional>
#include <stdexcept>

namespace topicflow {
namespace {

constexpr int kInterrupted = 130;

std::string seconds_text(std::int64_t ms) {
  return fmt::format("{:g} s", static_cast<double>(ms) / 1000.0);
}

struct InFlight {
  wire::Submit chunk;  // kept for one resend
  std::int64_t sent_ms = 0;
  bool resent = false;
};

}  // namespace

Producer::Producer(ProducerConfig cfg) : cfg_(std::move(cfg)) {
  const wire::Limits limits;
  const int actions = int{cfg_.pause} + int{cfg_.resume} + int{cfg_.cancel} + int{cfg_.remove};
  if (actions > 1) {
    throw std::invalid_argument("give one of --pause, --resume, --cancel, --delete");
  }
  if (actions == 1 && (!cfg_.file.empty() || cfg_.requeue_failed)) {
    throw std::invalid_argument(
        "--pause, --resume, --cancel and --delete act on --job: no FILE and no --requeue-failed");
  }
  if (cfg_.file.empty() && !cfg_.requeue_failed && actions == 0) {
    throw std::invalid_argument(
        "an input FILE is required (or --requeue-failed --job J to requeue a job's failed topics, "
        "or --pause/--resume/--cancel/--delete --job J)");
  }
  if (cfg_.job.empty()) throw std::invalid_argument("--job must not be empty");
  if (cfg_.job.size() > limits.max_job_bytes) {
    throw std::invalid_argument("--job is longer than " + std::to_string(limits.max_job_bytes) +
                                " bytes");
  }
  if (!valid_utf8(cfg_.job)) throw std::invalid_argument("--job is not valid UTF-8");
  if (cfg_.chunk_size == 0 || cfg_.chunk_size > limits.max_items) {
    throw std::invalid_argument("--chunk-size must be between 1 and " +
                                std::to_string(limits.max_items));
  }
  if (cfg_.connect_timeout_ms <= 0)
    throw std::invalid_argument("--connect-timeout-ms must be positive");
  if (cfg_.ack_timeout_ms <= 0) throw std::invalid_argument("--ack-timeout-ms must be positive");
  (void)resolve_format(cfg_.file, cfg_.format);
  (void)ProgressView::parse_mode(cfg_.progress);
}

Producer::~Producer() = default;

void Producer::validate() {
  if (cfg_.file.empty() || input_) return;
  // Everything is checked before anything is sent: a bad line leaves the job untouched.
  const auto started = steady_ms();
  auto input = std::make_unique<InputSource>(cfg_.file, cfg_.format, cfg_.stdin_fd);
  const auto stats = input->validate();
  spdlog::info("{}: {} topics in {} lines, all valid ({} format, checked in {} ms)", input->name(),
               stats.topics, stats.lines, input->format() == InputFormat::jsonl ? "jsonl" : "text",
               steady_ms() - started);
  input_ = std::move(input);
}

bool Producer::submit(SinkClient& client, const StopSignal& stop,
                      const std::function<bool()>& tick) {
  if (cfg_.pause || cfg_.resume || cfg_.cancel || cfg_.remove) return control(client, stop);
  if (cfg_.file.empty()) return requeue(client, stop);
  validate();
  return submit_input(client, stop, tick);
}

int Producer::run(const StopSignal& stop) {
  validate();
  zmq::context_t ctx(1);
  SinkClient client(ctx, cfg_.endpoints, random_id(), cfg_.job, cfg_.security);
  spdlog::debug("client id {}", client.client_id());
  if (!client.handshake(std::chrono::milliseconds(cfg_.connect_timeout_ms), stop))
    return kInterrupted;
  if (!submit(client, stop)) return kInterrupted;
  if (!cfg_.wait) return 0;

  ProgressView view(ProgressView::parse_mode(cfg_.progress));
  const auto final_progress = follow_job(client, view, stop);
  if (!final_progress) {
    spdlog::info("interrupted; job {} goes on in the sink (`topicflow status` shows it)", cfg_.job);
    return kInterrupted;
  }
  spdlog::info("job {}: {} completed, {} failed", cfg_.job, final_progress->completed,
               final_progress->failed);
  if (final_progress->failed > 0) {
    spdlog::error("{} topics failed; see `topicflow status --db ... --job {}`",
                  final_progress->failed, cfg_.job);
    return 1;
  }
  return 0;
}

void Producer::count(const wire::Ack& ack) {
  totals_.accepted += ack.accepted;
  totals_.duplicates += ack.duplicates;
  totals_.skipped_completed += ack.skipped_completed;
  totals_.skipped_failed += ack.skipped_failed;
  totals_.requeued += ack.requeued;
  totals_.already_queued += ack.already_queued;
  totals_.rejected += ack.rejected;
}

bool Producer::submit_input(SinkClient& client, const StopSignal& stop,
                            const std::function<bool()>& tick) {
  const auto started = steady_ms();
  const auto ack_timeout = std::chrono::milliseconds(cfg_.ack_timeout_ms);
  auto reader = input_->open();
  std::map<std::uint32_t, InFlight> in_flight;
  std::uint32_t next_seq = 0;
  bool eof = false;
  // A new connection to the sink (a restarted one): what was in flight may be lost (see below).
  auto connections = client.sink_connections();

  // Reads the next chunk; empty at the end of the input.
  auto read_chunk = [&] {
    wire::Submit chunk{cfg_.job, client.client_id(), next_seq, cfg_.requeue_failed, {}};
    std::size_t bytes = 0;
    while (chunk.items.size() < cfg_.chunk_size && bytes < kMaxChunkBytes) {
      auto topic = reader.next();
      if (!topic) {
        eof = true;
        break;
      }
      // Checked before each read, so a chunk overshoots by at most one topic (<= ~1 MiB).
      bytes += topic->key.size() + topic->payload.size() + 16;
      chunk.items.push_back(wire::SubmitItem{std::move(topic->key), std::move(topic->payload)});
    }
    return chunk;
  };

  for (;;) {
    while (!eof && in_flight.size() < kWindow) {
      auto chunk = read_chunk();
      if (chunk.items.empty()) break;
      totals_.topics += chunk.items.size();
      ++totals_.chunks;
      const auto seq = next_seq++;
      if (!client.send(chunk, stop, ack_timeout)) return false;
      spdlog::debug("sent chunk {} ({} topics)", seq, chunk.items.size());
      in_flight.emplace(seq, InFlight{std::move(chunk), steady_ms(), false});
    }
    if (in_flight.empty()) break;

    std::int64_t earliest = in_flight.begin()->second.sent_ms;
    for (const auto& [seq, f] : in_flight) earliest = std::min(earliest, f.sent_ms);
    const auto wait_ms = std::max<std::int64_t>(earliest + cfg_.ack_timeout_ms - steady_ms(), 1);
    auto event = client.next_event(
        std::chrono::milliseconds(std::min<std::int64_t>(wait_ms, tick ? 100 : 1000)), stop);
    if (stop.triggered() || (tick && !tick())) {
      spdlog::warn("interrupted: {} of {} chunks acknowledged", totals_.chunks - in_flight.size(),
                   totals_.chunks);
      return false;
    }
    if (event) {
      if (const auto* ack = std::get_if<wire::Ack>(&*event);
          ack != nullptr && ack->kind == wire::AckKind::submit) {
        // An ack for a chunk already acked (the answer to a resend) is ignored.
        if (auto it = in_flight.find(ack->seq); it != in_flight.end()) {
          count(*ack);
          in_flight.erase(it);
        }
      }
    }
    if (client.sink_connections() != connections) {
      // The connection to the sink was made again (`topicflow run`, systemd or Compose restarted
      // it, or the network dropped): what it had not acknowledged may be lost (a commit it made
      // counts the chunk's topics as duplicates). Sent again now, each still allowed one timeout.
      if (!in_flight.empty()) {
        spdlog::warn(
            "the sink was restarted or reconnected: sending the {} chunks it had not acknowledged "
            "again",
            in_flight.size());
        // Both directions work again (its PUB too: no ack lost to a late subscription).
        if (!client.handshake(std::chrono::milliseconds(cfg_.connect_timeout_ms), stop)) {
          return false;
        }
      }
      for (auto& [seq, f] : in_flight) {
        if (!client.send(f.chunk, stop, ack_timeout)) return false;
        f.sent_ms = steady_ms();
        f.resent = false;
        ++totals_.resent_chunks;
      }
      connections = client.sink_connections();  // (the handshake may have seen it connect)
    }
    const auto now = steady_ms();
    for (auto& [seq, f] : in_flight) {
      if (now - f.sent_ms < cfg_.ack_timeout_ms) continue;
      if (f.resent) {
        throw std::runtime_error(fmt::format(
            "the sink at {} did not acknowledge chunk {} ({} topics) within {} after a resend; "
            "is it running and is --events {} its PUB address?",
            cfg_.endpoints.sink, seq, f.chunk.items.size(), seconds_text(cfg_.ack_timeout_ms),
            cfg_.endpoints.events));
      }
      spdlog::warn("no acknowledgement for chunk {} within {}; sending it again", seq,
                   seconds_text(cfg_.ack_timeout_ms));
      if (!client.send(f.chunk, stop, ack_timeout)) return false;
      f.sent_ms = steady_ms();
      f.resent = true;
      ++totals_.resent_chunks;
    }
  }

  const auto& t = totals_;
  std::string extra;
  if (t.skipped_failed > 0)
    extra += fmt::format(", skipped_failed {} (use --requeue-failed to run them again)",
                         t.skipped_failed);
  if (t.rejected > 0) extra += fmt::format(", rejected {}", t.rejected);
  if (t.resent_chunks > 0)
    extra += fmt::format(" ({} chunks resent: topics already registered count as duplicates)",
                         t.resent_chunks);
  spdlog::info(
      "job {}: read {} topics, {} chunks acknowledged in {} ms: accepted {}, duplicates {}, "
      "skipped_completed {}, requeued {}, already_queued {}{}",
      cfg_.job, t.topics, t.chunks, steady_ms() - started, t.accepted, t.duplicates,
      t.skipped_completed, t.requeued, t.already_queued, extra);
  if (t.rejected > 0) spdlog::warn("the sink rejected {} topics", t.rejected);
  return true;
}

bool Producer::control(SinkClient& client, const StopSignal& stop) {
  auto action = wire::ControlAction::pause;
  const char* what = "pause";
  if (cfg_.resume) action = wire::ControlAction::resume, what = "resume";
  if (cfg_.cancel) action = wire::ControlAction::cancel, what = "cancel";
  if (cfg_.remove) action = wire::ControlAction::remove, what = "delete";
  const auto ack = job_request(client, stop, wire::Control{client.client_id(), cfg_.job, action},
                               wire::AckKind::control, what);
  if (!ack) return false;
  if (!ack->error.empty()) throw std::runtime_error(ack->error);
  switch (action) {
    case wire::ControlAction::pause: spdlog::info("job {} paused", cfg_.job); break;
    case wire::ControlAction::resume: spdlog::info("job {} resumed", cfg_.job); break;
    case wire::ControlAction::cancel:
      spdlog::info("job {}: {} topics cancelled", cfg_.job, ack->changed);
      break;
    case wire::ControlAction::remove:
      spdlog::info("job {} deleted ({} topics)", cfg_.job, ack->changed);
      break;
  }
  return true;
}

bool Producer::requeue(SinkClient& client, const StopSignal& stop) {
  const auto ack = job_request(client, stop, wire::Requeue{client.client_id(), cfg_.job},
                               wire::AckKind::requeue, "requeue");
  if (!ack) return false;
  count(*ack);
  spdlog::info("job {}: requeued {} failed topics", cfg_.job, ack->requeued);
  return true;
}

std::optional<wire::Ack> Producer::job_request(SinkClient& client, const StopSignal& stop,
                                               const wire::Message& request, wire::AckKind kind,
                                               const char* what) {
  const auto ack_timeout = std::chrono::milliseconds(cfg_.ack_timeout_ms);
  if (!client.send(request, stop, ack_timeout)) return std::nullopt;
  auto sent = steady_ms();
  bool resent = false;
  for (;;) {
    const auto left = sent + cfg_.ack_timeout_ms - steady_ms();
    if (left <= 0) {
      if (resent) {
        throw std::runtime_error(
            "the sink at " + cfg_.endpoints.sink + " did not acknowledge the " + what + " of job " +
            cfg_.job + " within " + seconds_text(cfg_.ack_timeout_ms) + " after a resend");
      }
      spdlog::warn("no acknowledgement for the {} within {}; sending it again", what,
                   seconds_text(cfg_.ack_timeout_ms));
      if (!client.send(request, stop, ack_timeout)) return std::nullopt;
      sent = steady_ms();
      resent = true;
      continue;
    }
    auto event = client.next_event(std::chrono::milliseconds(left), stop);
    if (stop.triggered()) return std::nullopt;
    if (!event) continue;
    if (const auto* ack = std::get_if<wire::Ack>(&*event); ack != nullptr && ack->kind == kind) {
      return *ack;
    }
  }
}

}  // namespace topicflow
