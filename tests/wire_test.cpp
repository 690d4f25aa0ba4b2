// Unit tests of the wire codec (common/src/wire.cpp): every message round-trips, and every kind
// of malformed frame is rejected with wire::DecodeError (never another exception, never a crash).

#include <topicflow/wire.hpp>

#include <gtest/gtest.h>
#include <msgpack.hpp>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace wire = topicflow::wire;

namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

// Builds msgpack frames by hand, including ones the encoder would never produce. Copyable, so a
// helper can return a half-built frame for the caller to finish.
class Frame {
 public:
  Frame& array(std::uint32_t n) {
    return pack([&](Packer& pk) { pk.pack_array(n); });
  }
  Frame& map(std::uint32_t n) {
    return pack([&](Packer& pk) { pk.pack_map(n); });
  }
  Frame& uint(std::uint64_t v) {
    return pack([&](Packer& pk) { pk.pack_uint64(v); });
  }
  Frame& sint(std::int64_t v) {
    return pack([&](Packer& pk) { pk.pack_int64(v); });
  }
  Frame& str(std::string_view s) {
    return pack([&](Packer& pk) {
      pk.pack_str(static_cast<std::uint32_t>(s.size()));
      pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
    });
  }
  Frame& bin(std::string_view s) {
    return pack([&](Packer& pk) {
      pk.pack_bin(static_cast<std::uint32_t>(s.size()));
      pk.pack_bin_body(s.data(), static_cast<std::uint32_t>(s.size()));
    });
  }
  Frame& boolean(bool b) {
    return pack([&](Packer& pk) {
      if (b) {
        pk.pack_true();
      } else {
        pk.pack_false();
      }
    });
  }
  Frame& nil() {
    return pack([](Packer& pk) { pk.pack_nil(); });
  }
  Frame& raw(std::string_view bytes) {
    bytes_.append(bytes);
    return *this;
  }
  [[nodiscard]] std::string bytes() const { return bytes_; }

 private:
  Frame& pack(const std::function<void(Packer&)>& body) {
    msgpack::sbuffer buffer;
    Packer pk(buffer);
    body(pk);
    bytes_.append(buffer.data(), buffer.size());
    return *this;
  }
  std::string bytes_;
};

std::string hex(std::string_view bytes, std::size_t max = 48) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < bytes.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    out += kDigits[c >> 4U];
    out += kDigits[c & 0xFU];
    out += ' ';
  }
  if (bytes.size() > max) out += "... (" + std::to_string(bytes.size()) + " bytes)";
  return out;
}

// Decodes and expects a DecodeError; returns its message ("" after a failure was recorded).
std::string expect_decode_error(std::string_view bytes, const std::string& context,
                                const wire::Limits& limits = {}) {
  try {
    const auto message = wire::decode(bytes, limits);
    ADD_FAILURE() << context << ": decoded as " << wire::type_name(message)
                  << " instead of throwing DecodeError; frame: " << hex(bytes);
  } catch (const wire::DecodeError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << context << ": threw a non-DecodeError exception: " << e.what()
                  << "; frame: " << hex(bytes);
  } catch (...) {
    ADD_FAILURE() << context << ": threw a non-std exception; frame: " << hex(bytes);
  }
  return {};
}

// Decodes anything: fine if it decodes, fine if it throws DecodeError, a failure otherwise.
// A frame that decodes must survive a re-encode round trip unchanged.
void expect_decoded_or_rejected(std::string_view bytes, const std::string& context) {
  try {
    const auto message = wire::decode(bytes);
    const auto again = wire::decode(wire::encode(message));
    EXPECT_EQ(again, message) << context
                              << ": re-encoding a decoded frame changed it; frame: " << hex(bytes);
  } catch (const wire::DecodeError&) {
  } catch (const std::exception& e) {
    ADD_FAILURE() << context << ": threw a non-DecodeError exception: " << e.what()
                  << "; frame: " << hex(bytes);
  } catch (...) {
    ADD_FAILURE() << context << ": threw a non-std exception; frame: " << hex(bytes);
  }
}

// Unpacks a valid frame, lets `edit` change its top-level fields, and packs it again.
std::string rewrite(
    const std::string& frame,
    const std::function<void(std::vector<msgpack::object>&, msgpack::zone&)>& edit) {
  auto handle = msgpack::unpack(frame.data(), frame.size());
  const auto& root = handle.get();
  std::vector<msgpack::object> fields(root.via.array.ptr, root.via.array.ptr + root.via.array.size);
  msgpack::zone zone;
  edit(fields, zone);
  msgpack::sbuffer out;
  Packer pk(out);
  pk.pack_array(static_cast<std::uint32_t>(fields.size()));
  for (const auto& f : fields) pk.pack(f);
  return {out.data(), out.size()};
}

// VmPeak (peak virtual memory) of this process in KiB: a big allocation, even one never touched,
// raises it.
std::int64_t vm_peak_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmPeak:", 0) == 0) return std::stoll(line.substr(7));
  }
  return -1;
}

struct Sample {
  std::string name;
  wire::Message message;
};

// One or more interesting instances of every message type.
std::vector<Sample> samples() {
  const std::string binary("\x00\x01\xff\xfe payload\x00", 13);
  wire::Submit submit{"job-a", "sub-123", 7, true, {{"k1", "p1"}, {"ключ", binary}, {"k3", ""}}};
  wire::Report report{"worker-1",
                      {{wire::UpdateKind::started, "job", "k", 1, false, ""},
                       {wire::UpdateKind::heartbeat, "job", "k", 1, false, ""},
                       {wire::UpdateKind::completed, "job", "k", 1, false, binary},
                       {wire::UpdateKind::failed, "job", "k2", 3, true, "timeout: 5000 ms"},
                       {wire::UpdateKind::released, "job", "k3", 2, false, ""}}};
  wire::Ack ack{"client-9", wire::AckKind::submit, 42, 1, 2, 3, 4, 5, 6, 7};
  const wire::Progress progress{.job = "job",
                                .pending = 1,
                                .running = 2,
                                .completed = 3,
                                .failed = 4,
                                .cancelled = 12,
                                .paused = true,
                                .batches = 5,
                                .updates = 6,
                                .busy_retries = 7,
                                .retried = 8,
                                .redelivered = 9,
                                .duplicates = 10,
                                .decode_errors = 11,
                                .time_ms = 1'700'000'000'123,
                                .workers = 58};
  constexpr auto kMax64 = std::numeric_limits<std::uint64_t>::max();
  const wire::Progress progress_extreme{.job = "j",
                                        .pending = kMax64,
                                        .running = kMax64,
                                        .completed = kMax64,
                                        .failed = kMax64,
                                        .cancelled = kMax64,
                                        .batches = kMax64,
                                        .updates = kMax64,
                                        .busy_retries = kMax64,
                                        .retried = kMax64,
                                        .redelivered = kMax64,
                                        .duplicates = kMax64,
                                        .decode_errors = kMax64,
                                        .time_ms = std::numeric_limits<std::int64_t>::min(),
                                        .workers = kMax64};
  return {
      {"task", wire::Task{"default", "topic one", binary, 1}},
      {"task_max_attempt", wire::Task{"j", "k", "", std::numeric_limits<std::uint32_t>::max()}},
      {"task_unicode", wire::Task{"jöb", "ключ 🔑", "payload", 0}},
      {"tasks",
       wire::TaskBatch{{wire::Task{"default", "a", binary, 1}, wire::Task{"jöb", "b", "", 7}}}},
      {"submit", submit},
      {"submit_empty", wire::Submit{"job", "sub", 0, false, {}}},
      {"report", report},
      {"report_empty", wire::Report{"", {}}},
      {"hello", wire::Hello{"client-1", "job-a"}},
      {"hello_no_job", wire::Hello{"client-1", ""}},
      {"requeue", wire::Requeue{"client-1", "job-a"}},
      {"broker_hello", wire::BrokerHello{"b-6f1c"}},
      {"ack", ack},
      {"ack_hello", wire::Ack{"c", wire::AckKind::hello, 0, 0, 0, 0, 0, 0, 0, 0}},
      {"ack_requeue", wire::Ack{"c", wire::AckKind::requeue, 1, 0, 0, 0, 9, 0, 0, 0}},
      {"progress", progress},
      {"progress_extreme", progress_extreme},
      {"control_pause", wire::Control{"client-1", "job-a", wire::ControlAction::pause}},
      {"control_remove", wire::Control{"c", "jöb", wire::ControlAction::remove}},
      {"cancel", wire::Cancel{{{"job", "k", 3}, {"jöb", "ключ", 1}}}},
      {"cancel_empty", wire::Cancel{}},
      {"ack_control", wire::Ack{.client = "c",
                                .kind = wire::AckKind::control,
                                .changed = 7,
                                .error = "job 'x' has 3 topics pending or running"}},
  };
}

}  // namespace

TEST(WireRoundTrip, EveryMessageTypeSurvivesEncodeDecode) {
  for (const auto& sample : samples()) {
    const auto bytes = wire::encode(sample.message);
    ASSERT_FALSE(bytes.empty()) << sample.name;
    wire::Message decoded;
    ASSERT_NO_THROW(decoded = wire::decode(bytes)) << sample.name << ": " << hex(bytes);
    EXPECT_EQ(decoded.index(), sample.message.index()) << sample.name;
    EXPECT_EQ(decoded, sample.message) << sample.name << ": " << hex(bytes);
  }
}

TEST(WireRoundTrip, CoversEveryType) {
  std::vector<bool> seen(std::variant_size_v<wire::Message>, false);
  for (const auto& sample : samples()) seen[sample.message.index()] = true;
  for (std::size_t i = 0; i < seen.size(); ++i) EXPECT_TRUE(seen[i]) << "no sample of type " << i;
}

TEST(WireRoundTrip, SpanOverloadMatchesStringOverload) {
  const auto bytes = wire::encode(wire::Task{"j", "k", "p", 3});
  const auto via_span =
      wire::decode(std::as_bytes(std::span<const char>(bytes.data(), bytes.size())));
  EXPECT_EQ(via_span, wire::decode(bytes));
}

TEST(WireRoundTrip, FieldsAtTheirLimitsAreAccepted) {
  const wire::Limits limits;
  const std::string job(limits.max_job_bytes, 'j');
  const std::string key(limits.max_key_bytes, 'k');
  const std::string payload(limits.max_payload_bytes, '\xAB');
  const wire::Message task = wire::Task{job, key, payload, 1};
  EXPECT_EQ(wire::decode(wire::encode(task)), task) << "job, key and payload exactly at the limit";

  const wire::Message report = wire::Report{
      "w",
      {{wire::UpdateKind::failed, job, key, 1, true, std::string(limits.max_data_bytes, 'e')}}};
  EXPECT_EQ(wire::decode(wire::encode(report)), report) << "data exactly at the limit";

  wire::Submit submit{"j", "s", 0, false, {}};
  const wire::Limits small{.max_items = 3};
  submit.items = {{"a", ""}, {"b", ""}, {"c", ""}};
  EXPECT_EQ(wire::decode(wire::encode(submit), small), wire::Message(submit))
      << "items exactly at max_items=3";
}

TEST(WireRoundTrip, PayloadAsStrIsAccepted) {
  // Bytes fields take bin or str, so a client in another language may send either.
  const auto frame =
      Frame().array(6).uint(1).uint(1).str("j").str("k").str("text payload").uint(2).bytes();
  const auto message = wire::decode(frame);
  const auto* task = std::get_if<wire::Task>(&message);
  ASSERT_NE(task, nullptr) << "decoded as " << wire::type_name(message);
  EXPECT_EQ(task->payload, "text payload");
  EXPECT_EQ(task->attempt, 2U);
}

TEST(WireFormat, TaskEncodingIsPinned) {
  // The protocol is a contract between binaries of possibly different builds: pin one frame.
  const auto bytes = wire::encode(wire::Task{"j", "k", "p", 1});
  const std::string expected("\x96\x01\x01\xa1j\xa1k\xc4\x01p\x01", 11);
  EXPECT_EQ(hex(bytes), hex(expected));
}

TEST(WireFormat, NamesAndTopics) {
  const std::vector<std::pair<wire::Message, std::string_view>> cases = {
      {wire::Task{}, "task"},       {wire::Submit{}, "submit"},
      {wire::Report{}, "report"},   {wire::Hello{}, "hello"},
      {wire::Requeue{}, "requeue"}, {wire::BrokerHello{}, "broker_hello"},
      {wire::Ack{}, "ack"},         {wire::Progress{}, "progress"},
      {wire::TaskBatch{}, "tasks"}, {wire::Control{}, "control"},
      {wire::Cancel{}, "cancel"},
  };
  for (const auto& [message, name] : cases) {
    EXPECT_EQ(wire::type_name(message), name) << "variant index " << message.index();
  }
  EXPECT_EQ(wire::to_string(wire::UpdateKind::started), "started");
  EXPECT_EQ(wire::to_string(wire::UpdateKind::heartbeat), "heartbeat");
  EXPECT_EQ(wire::to_string(wire::UpdateKind::completed), "completed");
  EXPECT_EQ(wire::to_string(wire::UpdateKind::failed), "failed");
  EXPECT_EQ(wire::to_string(wire::UpdateKind::released), "released");
  EXPECT_EQ(wire::to_string(static_cast<wire::UpdateKind>(99)), "unknown");
  EXPECT_EQ(wire::ack_topic("c1"), "ack/c1");
  EXPECT_EQ(wire::progress_topic("job-a"), "progress/job-a");
}

TEST(WireDecode, EmptyFrameThrows) {
  const auto what = expect_decode_error("", "empty frame");
  EXPECT_NE(what.find("empty"), std::string::npos) << "message: " << what;
  expect_decode_error(std::string_view(), "default string_view");
}

TEST(WireDecode, RandomBytesNeverCrash) {
  std::mt19937_64 rng(20240611);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<std::size_t> length(0, 200);
  for (int i = 0; i < 5000; ++i) {
    std::string frame(length(rng), '\0');
    for (auto& c : frame) c = static_cast<char>(byte(rng));
    // Half of them start like a real message, so the decoder gets past the header.
    if (i % 2 == 1 && frame.size() >= 3) {
      frame[0] = static_cast<char>(0x90 | (byte(rng) & 0x0F));
      frame[1] = 0x01;
      frame[2] = static_cast<char>(1 + byte(rng) % 8);
    }
    expect_decoded_or_rejected(frame, "random frame #" + std::to_string(i));
    if (HasFailure()) return;
  }
}

TEST(WireDecode, MutatedMessagesNeverCrash) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int> byte(0, 255);
  const auto all = samples();
  for (int i = 0; i < 4000; ++i) {
    const auto& sample = all[static_cast<std::size_t>(i) % all.size()];
    std::string frame = wire::encode(sample.message);
    const int edits = 1 + byte(rng) % 4;
    for (int e = 0; e < edits && !frame.empty(); ++e) {
      std::uniform_int_distribution<std::size_t> pos(0, frame.size() - 1);
      switch (byte(rng) % 4) {
        case 0: frame[pos(rng)] = static_cast<char>(byte(rng)); break;
        case 1: frame[pos(rng)] ^= static_cast<char>(1 << (byte(rng) % 8)); break;
        case 2: frame.insert(pos(rng), 1, static_cast<char>(byte(rng))); break;
        default: frame.erase(pos(rng), 1); break;
      }
    }
    expect_decoded_or_rejected(frame, sample.name + " mutation #" + std::to_string(i));
    if (HasFailure()) return;
  }
}

TEST(WireDecode, EveryTruncationThrows) {
  for (const auto& sample : samples()) {
    const auto frame = wire::encode(sample.message);
    for (std::size_t n = 0; n < frame.size(); ++n) {
      expect_decode_error(std::string_view(frame).substr(0, n),
                          sample.name + " truncated to " + std::to_string(n) + " of " +
                              std::to_string(frame.size()) + " bytes");
    }
    if (HasFailure()) return;
  }
}

TEST(WireDecode, TrailingBytesThrow) {
  const auto frame = wire::encode(wire::Hello{"c", "j"});
  const auto what = expect_decode_error(frame + '\0', "hello + one zero byte");
  EXPECT_NE(what.find("trailing"), std::string::npos) << "message: " << what;
  expect_decode_error(frame + frame, "two hellos in one frame");
}

TEST(WireDecode, WrongVersionThrows) {
  const auto bump = [](std::uint64_t v) {
    return Frame().array(4).uint(v).uint(4).str("client").str("job").bytes();
  };
  ASSERT_NO_THROW((void)wire::decode(bump(1))) << "the control frame must be valid";
  for (std::uint64_t v : {std::uint64_t{0}, std::uint64_t{2}, std::uint64_t{255},
                          std::uint64_t{1} << 32U, std::numeric_limits<std::uint64_t>::max()}) {
    const auto what = expect_decode_error(bump(v), "version " + std::to_string(v));
    EXPECT_NE(what.find("version"), std::string::npos) << "version " << v << ", message: " << what;
  }
  expect_decode_error(Frame().array(4).sint(-1).uint(4).str("c").str("j").bytes(), "version -1");
  expect_decode_error(Frame().array(4).str("1").uint(4).str("c").str("j").bytes(), "version \"1\"");
  expect_decode_error(Frame().array(4).nil().uint(4).str("c").str("j").bytes(), "version nil");
  // msgpack-c packs an integral double as an integer, so spell the float64 1.0 out.
  const std::string float_one("\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00", 9);
  expect_decode_error(Frame().array(4).raw(float_one).uint(4).str("c").str("j").bytes(),
                      "version 1.0");
}

TEST(WireDecode, TaskBatchMustHoldValidTasks) {
  expect_decode_error(wire::encode(wire::TaskBatch{}), "empty batch");
  expect_decode_error(
      wire::encode(wire::TaskBatch{{wire::Task{"j", "k", "p", 1}, wire::Task{"j", "", "p", 1}}}),
      "second task with an empty key");
}

TEST(WireDecode, UnknownTypeThrows) {
  for (std::uint64_t t : {std::uint64_t{0}, std::uint64_t{12}, std::uint64_t{255},
                          std::uint64_t{256 + 1}, std::numeric_limits<std::uint64_t>::max()}) {
    const auto what = expect_decode_error(
        Frame().array(4).uint(1).uint(t).str("c").str("j").bytes(), "type " + std::to_string(t));
    EXPECT_NE(what.find("type"), std::string::npos) << "type " << t << ", message: " << what;
  }
  expect_decode_error(Frame().array(4).uint(1).sint(-4).str("c").str("j").bytes(), "type -4");
  expect_decode_error(Frame().array(4).uint(1).str("hello").str("c").str("j").bytes(),
                      "type \"hello\"");
  expect_decode_error(Frame().array(4).uint(1).boolean(true).str("c").str("j").bytes(),
                      "type true");
}

TEST(WireDecode, NonMessageShapesThrow) {
  expect_decode_error(Frame().array(0).bytes(), "empty array");
  expect_decode_error(Frame().array(1).uint(1).bytes(), "array with the version only");
  expect_decode_error(Frame().array(2).uint(1).uint(1).bytes(), "task with no fields");
  expect_decode_error(Frame().map(0).bytes(), "empty map");
  expect_decode_error(Frame().map(1).uint(1).uint(1).bytes(), "map");
  expect_decode_error(Frame().uint(1).bytes(), "a bare integer");
  expect_decode_error(Frame().str("hello").bytes(), "a bare string");
  expect_decode_error(Frame().nil().bytes(), "nil");
  expect_decode_error("\xc1", "reserved msgpack byte 0xc1");
  expect_decode_error(std::string("\xd4\x01\x00", 3), "fixext1");
}

TEST(WireDecode, ExtraAndMissingFieldsThrow) {
  for (const auto& sample : samples()) {
    const auto frame = wire::encode(sample.message);
    const auto extra = rewrite(frame, [](auto& fields, auto&) { fields.emplace_back(); });
    const auto what = expect_decode_error(extra, sample.name + " with an extra nil field");
    EXPECT_NE(what.find("fields"), std::string::npos) << sample.name << ", message: " << what;
    const auto extra_int = rewrite(frame, [](auto& fields, auto&) { fields.emplace_back(1); });
    expect_decode_error(extra_int, sample.name + " with an extra integer field");
    const auto missing = rewrite(frame, [](auto& fields, auto&) { fields.pop_back(); });
    expect_decode_error(missing, sample.name + " without its last field");
    const auto missing_first =
        rewrite(frame, [](auto& fields, auto&) { fields.erase(fields.begin() + 2); });
    expect_decode_error(missing_first, sample.name + " without its first field");
  }
}

TEST(WireDecode, WrongFieldTypesThrow) {
  // nil, a float and a map are wrong for every field of every message.
  for (const auto& sample : samples()) {
    const auto frame = wire::encode(sample.message);
    const auto count = msgpack::unpack(frame.data(), frame.size()).get().via.array.size;
    for (std::uint32_t field = 2; field < count; ++field) {
      const auto name = sample.name + " field " + std::to_string(field);
      expect_decode_error(rewrite(frame, [&](auto& f, auto&) { f[field] = msgpack::object(); }),
                          name + " = nil");
      expect_decode_error(rewrite(frame, [&](auto& f, auto&) { f[field] = msgpack::object(1.5); }),
                          name + " = 1.5");
      expect_decode_error(rewrite(frame,
                                  [&](auto& f, auto&) {
                                    msgpack::object map;
                                    map.type = msgpack::type::MAP;
                                    map.via.map.size = 0;
                                    map.via.map.ptr = nullptr;
                                    f[field] = map;
                                  }),
                          name + " = {}");
    }
  }
}

TEST(WireDecode, SpecificWrongTypesAndRangesThrow) {
  // task: [1, 1, job, key, payload, attempt]
  const auto task = [] { return Frame().array(6).uint(1).uint(1); };
  expect_decode_error(task().uint(5).str("k").bin("p").uint(1).bytes(), "task.job int");
  expect_decode_error(task().bin("j").str("k").bin("p").uint(1).bytes(), "task.job bin");
  expect_decode_error(task().str("j").str("k").uint(7).uint(1).bytes(), "task.payload int");
  expect_decode_error(task().str("j").str("k").bin("p").str("1").bytes(), "task.attempt str");
  expect_decode_error(task().str("j").str("k").bin("p").sint(-1).bytes(), "task.attempt -1");
  expect_decode_error(task().str("j").str("k").bin("p").uint(std::uint64_t{1} << 32U).bytes(),
                      "task.attempt 2^32");
  expect_decode_error(task().str("j").str("k").bin("p").boolean(true).bytes(), "task.attempt true");

  // submit: [1, 2, job, submission, seq, requeue_failed, items]
  const auto submit = [] { return Frame().array(7).uint(1).uint(2).str("j").str("s").uint(0); };
  ASSERT_NO_THROW(
      (void)wire::decode(submit().boolean(false).array(1).array(2).str("k").bin("p").bytes()))
      << "control submit must be valid";
  expect_decode_error(submit().uint(1).array(0).bytes(), "submit.requeue_failed 1");
  expect_decode_error(submit().boolean(false).map(0).bytes(), "submit.items map");
  expect_decode_error(submit().boolean(false).array(1).str("k").bytes(), "submit.items[0] str");
  expect_decode_error(submit().boolean(false).array(1).array(3).str("k").bin("p").nil().bytes(),
                      "submit item with 3 fields");
  expect_decode_error(submit().boolean(false).array(1).array(1).str("k").bytes(),
                      "submit item with 1 field");
  expect_decode_error(submit().boolean(false).array(1).array(2).bin("k").bin("p").bytes(),
                      "submit item key bin");
  expect_decode_error(submit()
                          .boolean(false)
                          .array(2)
                          .array(2)
                          .str("k")
                          .bin("p")
                          .array(2)
                          .str("k2")
                          .uint(1)
                          .bytes(),
                      "second submit item payload int");
  expect_decode_error(Frame()
                          .array(7)
                          .uint(1)
                          .uint(2)
                          .str("j")
                          .str(std::string(129, 's'))
                          .uint(0)
                          .boolean(false)
                          .array(0)
                          .bytes(),
                      "submission id over 128 bytes");

  // report: [1, 3, worker, updates[[kind, job, key, attempt, retryable, data]]]
  // [version, type, worker, [update], slots]: each case appends an update, then slots
  const auto report = [] { return Frame().array(5).uint(1).uint(3).str("w").array(1); };
  ASSERT_NO_THROW((void)wire::decode(
      report().array(6).uint(3).str("j").str("k").uint(1).boolean(false).bin("").uint(2).bytes()))
      << "control report must be valid";
  for (std::uint64_t kind :
       {std::uint64_t{0}, std::uint64_t{6}, std::uint64_t{255}, std::uint64_t{256}}) {
    expect_decode_error(report()
                            .array(6)
                            .uint(kind)
                            .str("j")
                            .str("k")
                            .uint(1)
                            .boolean(false)
                            .bin("")
                            .uint(2)
                            .bytes(),
                        "update kind " + std::to_string(kind));
  }
  expect_decode_error(
      report().array(6).uint(3).str("j").str("k").uint(1).uint(0).bin("").uint(2).bytes(),
      "update retryable 0");
  expect_decode_error(
      report().array(6).uint(3).str("j").str("k").uint(1).boolean(false).uint(0).uint(2).bytes(),
      "update data int");
  expect_decode_error(
      report().array(5).uint(3).str("j").str("k").uint(1).boolean(false).uint(2).bytes(),
      "update with 5 fields");
  expect_decode_error(report().uint(3).uint(2).bytes(), "update not an array");

  // ack: [1, 7, client, kind, seq, counters...]
  const auto ack = [](std::uint64_t kind) {
    return rewrite(wire::encode(wire::Ack{.client = "c"}),
                   [&](auto& f, auto&) { f[3] = msgpack::object(kind); });
  };
  ASSERT_NO_THROW((void)wire::decode(ack(1))) << "control ack must be valid";
  expect_decode_error(ack(0), "ack kind 0");
  ASSERT_NO_THROW((void)wire::decode(ack(4))) << "control ack must be valid";
  expect_decode_error(ack(5), "ack kind 5");
  expect_decode_error(ack(256), "ack kind 256");

  // progress: [1, 8, job, 12 counters, paused, time_ms, ...]; edit a valid frame so that fields
  // added later do not break these cases.
  const auto progress = wire::encode(wire::Progress{.job = "j"});
  constexpr std::size_t kPending = 3;
  constexpr std::size_t kTimeMs = 16;
  const auto with = [&](std::size_t field, const msgpack::object& value) {
    return rewrite(progress, [&](auto& f, auto&) { f[field] = value; });
  };
  const auto negative_time = wire::decode(with(kTimeMs, msgpack::object(std::int64_t{-5})));
  ASSERT_TRUE(std::holds_alternative<wire::Progress>(negative_time));
  EXPECT_EQ(std::get<wire::Progress>(negative_time).time_ms, -5) << "negative time_ms is valid";
  expect_decode_error(with(kTimeMs, msgpack::object(std::numeric_limits<std::uint64_t>::max())),
                      "progress.time_ms 2^64-1");
  msgpack::zone zone;
  expect_decode_error(with(kTimeMs, msgpack::object(std::string("now"), zone)),
                      "progress.time_ms str");
  expect_decode_error(with(kPending, msgpack::object(std::int64_t{-1})), "progress.pending -1");
}

TEST(WireDecode, JobNamesWithANulThrow) {
  // The sink keys a topic by "job NUL key": a NUL in a job name would make two topics one.
  const std::string job("a\0b", 3);
  expect_decode_error(wire::encode(wire::Task{job, "k", "p", 1}), "task job with NUL");
  expect_decode_error(wire::encode(wire::Submit{job, "s", 0, false, {{"k", "p"}}}),
                      "submit job with NUL");
  expect_decode_error(wire::encode(wire::Control{"c", job, wire::ControlAction::cancel}),
                      "control job with NUL");
  EXPECT_NO_THROW((void)wire::decode(wire::encode(wire::Task{"j", std::string("k\0", 2), "", 1})))
      << "a key may hold a NUL";
}

TEST(WireDecode, EmptyKeysAndJobsThrow) {
  expect_decode_error(wire::encode(wire::Task{"j", "", "p", 1}), "task with empty key");
  expect_decode_error(wire::encode(wire::Task{"", "k", "p", 1}), "task with empty job");
  expect_decode_error(wire::encode(wire::Submit{"j", "s", 0, false, {{"k", "p"}, {"", "p"}}}),
                      "submit with an empty item key");
  expect_decode_error(wire::encode(wire::Submit{"", "s", 0, false, {}}), "submit with empty job");
  expect_decode_error(wire::encode(wire::Submit{"j", "", 0, false, {}}),
                      "submit with empty submission");
  expect_decode_error(
      wire::encode(wire::Report{"w", {{wire::UpdateKind::started, "j", "", 1, false, ""}}}),
      "report update with empty key");
  expect_decode_error(
      wire::encode(wire::Report{"w", {{wire::UpdateKind::started, "", "k", 1, false, ""}}}),
      "report update with empty job");
  expect_decode_error(wire::encode(wire::Hello{"", "j"}), "hello with empty client");
  expect_decode_error(wire::encode(wire::Requeue{"c", ""}), "requeue with empty job");
  expect_decode_error(wire::encode(wire::BrokerHello{""}), "broker_hello with empty instance");
  const auto what = expect_decode_error(wire::encode(wire::Task{"j", "", "p", 1}), "task key");
  EXPECT_NE(what.find("key"), std::string::npos) << "the reason should name the field: " << what;
}

TEST(WireDecode, OversizedFieldsThrow) {
  const wire::Limits limits;
  const auto what = expect_decode_error(
      wire::encode(wire::Task{"j", std::string(limits.max_key_bytes + 1, 'k'), "p", 1}),
      "key over the limit");
  EXPECT_NE(what.find("key"), std::string::npos) << "message: " << what;
  expect_decode_error(
      wire::encode(wire::Task{std::string(limits.max_job_bytes + 1, 'j'), "k", "p", 1}),
      "job over the limit");
  expect_decode_error(
      wire::encode(wire::Task{"j", "k", std::string(limits.max_payload_bytes + 1, 'p'), 1}),
      "payload over the limit");
  expect_decode_error(wire::encode(wire::Submit{
                          "j", "s", 0, false, {{std::string(limits.max_key_bytes + 1, 'k'), "p"}}}),
                      "submit item key over the limit");

  const wire::Limits tight{.max_job_bytes = 4,
                           .max_key_bytes = 8,
                           .max_payload_bytes = 16,
                           .max_data_bytes = 16,
                           .max_items = 2};
  expect_decode_error(wire::encode(wire::Task{"j", "123456789", "p", 1}), "key 9 > custom 8",
                      tight);
  EXPECT_NO_THROW((void)wire::decode(wire::encode(wire::Task{"j", "12345678", "p", 1}), tight))
      << "key 8 == custom limit 8";
  expect_decode_error(wire::encode(wire::Task{"jobxx", "k", "p", 1}), "job 5 > custom 4", tight);
  expect_decode_error(wire::encode(wire::Task{"j", "k", std::string(17, 'p'), 1}),
                      "payload 17 > 16", tight);
  expect_decode_error(
      wire::encode(wire::Submit{"j", "s", 0, false, {{"a", ""}, {"b", ""}, {"c", ""}}}),
      "3 items > max_items 2", tight);
  expect_decode_error(
      wire::encode(
          wire::Report{"w", {{wire::UpdateKind::failed, "j", "k", 1, true, std::string(17, 'e')}}}),
      "error data 17 > 16", tight);
  wire::Report many{"w", {}};
  many.updates.assign(3, wire::Update{wire::UpdateKind::heartbeat, "j", "k", 1, false, ""});
  expect_decode_error(wire::encode(many), "3 updates > max_items 2", tight);
}

TEST(WireDecode, InvalidUtf8Throws) {
  for (const auto& bad :
       {std::string("\xff"), std::string("ab\xc0\x80"), std::string("\xed\xa0\x80"),
        std::string("k\xe2\x82"), std::string("\xf4\x90\x80\x80")}) {
    const auto what =
        expect_decode_error(wire::encode(wire::Task{"j", bad, "p", 1}), "key " + hex(bad));
    EXPECT_NE(what.find("UTF-8"), std::string::npos) << "key " << hex(bad) << ", message: " << what;
    expect_decode_error(wire::encode(wire::Task{bad, "k", "p", 1}), "job " + hex(bad));
    expect_decode_error(wire::encode(wire::Submit{"j", "s", 0, false, {{bad, "p"}}}),
                        "item key " + hex(bad));
  }
  // The payload is bytes, not text: anything goes.
  EXPECT_NO_THROW((void)wire::decode(wire::encode(wire::Task{"j", "k", "\xff\xfe", 1})));
}

TEST(WireDecode, HugeLengthHeadersThrowQuicklyWithoutAllocating) {
  const std::string max32("\xff\xff\xff\xff", 4);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"root array32 of 2^32-1", "\xdd" + max32},
      {"root array32 of 2^32-1 with some elements", "\xdd" + max32 + "\x01\x01\xa1j"},
      {"submit items array32 of 2^32-1", Frame()
                                             .array(7)
                                             .uint(1)
                                             .uint(2)
                                             .str("j")
                                             .str("s")
                                             .uint(0)
                                             .boolean(false)
                                             .raw("\xdd" + max32)
                                             .bytes()},
      {"report updates array32 of 2^32-1",
       Frame().array(4).uint(1).uint(3).str("w").raw("\xdd" + max32).bytes()},
      {"submit items array32 of 50M", Frame()
                                          .array(7)
                                          .uint(1)
                                          .uint(2)
                                          .str("j")
                                          .str("s")
                                          .uint(0)
                                          .boolean(false)
                                          .raw(std::string("\xdd\x02\xfa\xf0\x80", 5))
                                          .bytes()},
      {"map32 of 2^32-1", "\xdf" + max32},
      {"str32 of 2^32-1", Frame().array(6).uint(1).uint(1).str("j").raw("\xdb" + max32).bytes()},
      {"bin32 of 2^32-1",
       Frame().array(6).uint(1).uint(1).str("j").str("k").raw("\xc6" + max32).bytes()},
      {"ext32 of 2^32-1", "\xc9" + max32 + "\x01"},
      {"nested arrays 100000 deep", std::string(100000, '\x91')},
  };
  for (const auto& [name, frame] : cases) {
    const auto peak_before = vm_peak_kib();
    const auto start = std::chrono::steady_clock::now();
    const auto what = expect_decode_error(frame, name);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    const auto peak_after = vm_peak_kib();
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();
    EXPECT_LT(ms, 1000) << name << ": took " << ms << " ms";
    EXPECT_LT(peak_after - peak_before, 64 * 1024) << name << ": peak virtual memory grew from "
                                                   << peak_before << " to " << peak_after << " KiB";
    EXPECT_EQ(what.find("bad_alloc"), std::string::npos) << name << ": " << what;
  }
}

TEST(WireDecode, ReasonsAreOneLine) {
  const std::vector<std::string> frames = {
      "", "\xc1", Frame().array(2).uint(3).uint(1).bytes(),
      wire::encode(wire::Task{"j", "", "p", 1}),
      Frame().array(6).uint(1).uint(1).str("j").str("k").bin("p").str("x").bytes()};
  for (const auto& frame : frames) {
    const auto what = expect_decode_error(frame, "frame " + hex(frame));
    EXPECT_FALSE(what.empty()) << "frame " << hex(frame);
    EXPECT_EQ(what.find('\n'), std::string::npos) << "frame " << hex(frame) << ": " << what;
  }
}
