// Writes the seed corpus of wire_fuzz: one valid encoded message of every type (several for
// the ones with lists and optional fields), generated from the current encoder so the seeds
// follow the wire format when it changes.  Usage: wire_fuzz_seeds DIR
#include <topicflow/wire.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  namespace wire = topicflow::wire;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path dir(argv[1]);
  std::filesystem::create_directories(dir);

  std::vector<std::pair<std::string, wire::Message>> seeds;
  seeds.emplace_back("task", wire::Task{"default", "Why is the sky blue?", "payload", 1});
  seeds.emplace_back("task-utf8",
                     wire::Task{"j", "caf\xc3\xa9 \xe2\x82\xac", std::string("\0\xff", 2), 7});
  seeds.emplace_back("submit-empty", wire::Submit{"j", "s1", 0, false, {}});
  seeds.emplace_back(
      "submit",
      wire::Submit{"default", "3f2a9c", 4, true, {{"k1", "p1"}, {"k2", ""}, {"k3", "{\"a\":1}"}}});
  wire::Report report{"worker-1", {}, 4};
  report.updates.push_back({wire::UpdateKind::started, "j", "k", 1, false, ""});
  report.updates.push_back({wire::UpdateKind::heartbeat, "j", "k", 1, false, ""});
  report.updates.push_back({wire::UpdateKind::completed, "j", "k", 1, false, "result"});
  report.updates.push_back({wire::UpdateKind::failed, "j", "k2", 2, true, "timeout"});
  report.updates.push_back({wire::UpdateKind::released, "j", "k3", 3, false, ""});
  seeds.emplace_back("report", report);
  seeds.emplace_back("report-announce", wire::Report{"w", {}, 1});
  seeds.emplace_back("hello", wire::Hello{"client-1", "default"});
  seeds.emplace_back("hello-nojob", wire::Hello{"client-1", ""});
  seeds.emplace_back("requeue", wire::Requeue{"client-1", "default"});
  seeds.emplace_back("broker-hello", wire::BrokerHello{"a1b2c3d4"});
  seeds.emplace_back("ack", wire::Ack{"client-1", wire::AckKind::submit, 3, 100, 1, 2, 3, 4, 5, 6});
  seeds.emplace_back("ack-control", wire::Ack{.client = "client-1",
                                              .kind = wire::AckKind::control,
                                              .seq = 4,
                                              .changed = 7,
                                              .error = "no job named 'x'"});
  seeds.emplace_back("progress", wire::Progress{.job = "default",
                                                .pending = 1,
                                                .running = 2,
                                                .completed = 3,
                                                .failed = 4,
                                                .cancelled = 5,
                                                .paused = true,
                                                .batches = 6,
                                                .updates = 7,
                                                .busy_retries = 8,
                                                .retried = 9,
                                                .redelivered = 10,
                                                .duplicates = 11,
                                                .decode_errors = 12,
                                                .time_ms = 1700000000000,
                                                .workers = 13});
  seeds.emplace_back(
      "task-batch", wire::TaskBatch{{wire::Task{"j", "k1", "p", 1}, wire::Task{"j", "k2", "", 2}}});
  seeds.emplace_back("control", wire::Control{"client-1", "default", wire::ControlAction::cancel});
  seeds.emplace_back("cancel", wire::Cancel{{{"j", "k1", 1}, {"j", "k2", 3}}});

  for (const auto& [name, message] : seeds) {
    const std::string bytes = wire::encode(message);
    (void)wire::decode(bytes);  // a seed the decoder rejects would be a bug in this file
    std::ofstream(dir / name, std::ios::binary) << bytes;
  }
  std::printf("wire_fuzz_seeds: %zu seeds in %s\n", seeds.size(), dir.c_str());
  return 0;
}
