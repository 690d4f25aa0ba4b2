#include <topicflow/utf8.hpp>
#include <topicflow/wire.hpp>

#include <msgpack.hpp>

#include <limits>
#include <type_traits>

namespace topicflow::wire {
namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

void pack_str(Packer& pk, std::string_view s) {
  pk.pack_str(static_cast<std::uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}
void pack_bin(Packer& pk, std::string_view s) {
  pk.pack_bin(static_cast<std::uint32_t>(s.size()));
  pk.pack_bin_body(s.data(), static_cast<std::uint32_t>(s.size()));
}
void header(Packer& pk, Type type, std::uint32_t fields) {
  pk.pack_array(2 + fields);
  pk.pack_uint32(kVersion);
  pk.pack_uint8(static_cast<std::uint8_t>(type));
}

struct Encoder {
  Packer& pk;
  void operator()(const Task& m) const {
    header(pk, Type::task, 4);
    pack_str(pk, m.job);
    pack_str(pk, m.key);
    pack_bin(pk, m.payload);
    pk.pack_uint32(m.attempt);
  }
  void operator()(const TaskBatch& m) const {
    header(pk, Type::tasks, 1);
    pk.pack_array(static_cast<std::uint32_t>(m.tasks.size()));
    for (const auto& t : m.tasks) {
      pk.pack_array(4);
      pack_str(pk, t.job);
      pack_str(pk, t.key);
      pack_bin(pk, t.payload);
      pk.pack_uint32(t.attempt);
    }
  }
  void operator()(const Submit& m) const {
    header(pk, Type::submit, 5);
    pack_str(pk, m.job);
    pack_str(pk, m.submission);
    pk.pack_uint32(m.seq);
    if (m.requeue_failed)
      pk.pack_true();
    else
      pk.pack_false();
    pk.pack_array(static_cast<std::uint32_t>(m.items.size()));
    for (const auto& item : m.items) {
      pk.pack_array(2);
      pack_str(pk, item.key);
      pack_bin(pk, item.payload);
    }
  }
  void operator()(const Report& m) const {
    header(pk, Type::report, 3);
    pack_str(pk, m.worker);
    pk.pack_array(static_cast<std::uint32_t>(m.updates.size()));
    for (const auto& u : m.updates) {
      pk.pack_array(6);
      pk.pack_uint8(static_cast<std::uint8_t>(u.kind));
      pack_str(pk, u.job);
      pack_str(pk, u.key);
      pk.pack_uint32(u.attempt);
      if (u.retryable)
        pk.pack_true();
      else
        pk.pack_false();
      pack_bin(pk, u.data);
    }
    pk.pack_uint32(m.slots);
  }
  void operator()(const Hello& m) const {
    header(pk, Type::hello, 2);
    pack_str(pk, m.client);
    pack_str(pk, m.job);
  }
  void operator()(const Requeue& m) const {
    header(pk, Type::requeue, 2);
    pack_str(pk, m.client);
    pack_str(pk, m.job);
  }
  void operator()(const BrokerHello& m) const {
    header(pk, Type::broker_hello, 1);
    pack_str(pk, m.instance);
  }
  void operator()(const Ack& m) const {
    header(pk, Type::ack, 12);
    pack_str(pk, m.client);
    pk.pack_uint8(static_cast<std::uint8_t>(m.kind));
    pk.pack_uint32(m.seq);
    pk.pack_uint64(m.accepted);
    pk.pack_uint64(m.duplicates);
    pk.pack_uint64(m.skipped_completed);
    pk.pack_uint64(m.requeued);
    pk.pack_uint64(m.already_queued);
    pk.pack_uint64(m.rejected);
    pk.pack_uint64(m.skipped_failed);
    pk.pack_uint64(m.changed);
    pack_str(pk, m.error);
  }
  void operator()(const Control& m) const {
    header(pk, Type::control, 3);
    pack_str(pk, m.client);
    pack_str(pk, m.job);
    pk.pack_uint8(static_cast<std::uint8_t>(m.action));
  }
  void operator()(const Cancel& m) const {
    header(pk, Type::cancel, 1);
    pk.pack_array(static_cast<std::uint32_t>(m.tasks.size()));
    for (const auto& t : m.tasks) {
      pk.pack_array(3);
      pack_str(pk, t.job);
      pack_str(pk, t.key);
      pk.pack_uint32(t.attempt);
    }
  }
  void operator()(const Progress& m) const {
    header(pk, Type::progress, 16);
    pack_str(pk, m.job);
    for (std::uint64_t v :
         {m.pending, m.running, m.completed, m.failed, m.cancelled, m.batches, m.updates,
          m.busy_retries, m.retried, m.redelivered, m.duplicates, m.decode_errors}) {
      pk.pack_uint64(v);
    }
    if (m.paused) {
      pk.pack_true();
    } else {
      pk.pack_false();
    }
    pk.pack_int64(m.time_ms);
    pk.pack_uint64(m.workers);
  }
};

// Reads the fields of one msgpack array with type and size checks; every failure is a
// DecodeError naming the field.
class Fields {
 public:
  Fields(const msgpack::object& array, std::size_t expected, const char* what, const Limits& limits)
      : limits_(limits), what_(what) {
    if (array.type != msgpack::type::ARRAY) fail("is not an array");
    if (array.via.array.size != expected) {
      throw DecodeError(std::string(what) + ": expected " + std::to_string(expected) +
                        " fields, got " + std::to_string(array.via.array.size));
    }
    ptr_ = array.via.array.ptr;
    size_ = array.via.array.size;
  }

  const msgpack::object& next() {
    if (index_ >= size_) fail("too few fields");
    return ptr_[index_++];
  }

  template <typename T>
  T uint(const char* field) {
    const auto& o = next();
    if (o.type != msgpack::type::POSITIVE_INTEGER || o.via.u64 > std::numeric_limits<T>::max()) {
      fail_field(field, "is not an unsigned integer in range");
    }
    return static_cast<T>(o.via.u64);
  }

  std::int64_t int64(const char* field) {
    const auto& o = next();
    if (o.type == msgpack::type::POSITIVE_INTEGER) {
      if (o.via.u64 > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        fail_field(field, "is out of range");
      }
      return static_cast<std::int64_t>(o.via.u64);
    }
    if (o.type == msgpack::type::NEGATIVE_INTEGER) return o.via.i64;
    fail_field(field, "is not an integer");
  }

  bool boolean(const char* field) {
    const auto& o = next();
    if (o.type != msgpack::type::BOOLEAN) fail_field(field, "is not a boolean");
    return o.via.boolean;
  }

  // Text: str type, valid UTF-8, within max bytes, optionally non-empty.
  std::string text(const char* field, std::size_t max, bool required) {
    const auto& o = next();
    if (o.type != msgpack::type::STR) fail_field(field, "is not a string");
    std::string_view s(o.via.str.ptr, o.via.str.size);
    if (required && s.empty()) fail_field(field, "is empty");
    if (s.size() > max) {
      fail_field(
          field,
          ("is " + std::to_string(s.size()) + " bytes, limit " + std::to_string(max)).c_str());
    }
    if (!valid_utf8(s)) fail_field(field, "is not valid UTF-8");
    return std::string(s);
  }

  // Bytes: bin or str, within max bytes.
  std::string bytes(const char* field, std::size_t max) {
    const auto& o = next();
    std::string_view s;
    if (o.type == msgpack::type::BIN) {
      s = std::string_view(o.via.bin.ptr, o.via.bin.size);
    } else if (o.type == msgpack::type::STR) {
      s = std::string_view(o.via.str.ptr, o.via.str.size);
    } else {
      fail_field(field, "is not bytes");
    }
    if (s.size() > max) {
      fail_field(
          field,
          ("is " + std::to_string(s.size()) + " bytes, limit " + std::to_string(max)).c_str());
    }
    return std::string(s);
  }

  const msgpack::object& array(const char* field) {
    const auto& o = next();
    if (o.type != msgpack::type::ARRAY) fail_field(field, "is not an array");
    if (o.via.array.size > limits_.max_items) {
      fail_field(field, ("has " + std::to_string(o.via.array.size) + " items, limit " +
                         std::to_string(limits_.max_items))
                            .c_str());
    }
    return o;
  }

  const Limits& limits() const { return limits_; }

 private:
  [[noreturn]] void fail(const char* why) const {
    throw DecodeError(std::string(what_) + " " + why);
  }
  [[noreturn]] void fail_field(const char* field, const char* why) const {
    throw DecodeError(std::string(what_) + "." + field + " " + why);
  }

  const Limits& limits_;
  const char* what_;
  const msgpack::object* ptr_ = nullptr;
  std::size_t size_ = 0;
  std::size_t index_ = 0;
};

// A job name: besides Fields::text's checks, no NUL (the sink keys a topic by "job NUL key").
std::string job_name(std::string name, const char* field) {
  if (name.find('\0') != std::string::npos) {
    throw DecodeError(std::string(field) + " contains a NUL character");
  }
  return name;
}

Message decode_body(Type type, const msgpack::object& root, const Limits& lim) {
  const std::size_t n = root.via.array.size - 2;
  // A view of the array without its [version, type] header.
  msgpack::object body;
  body.type = msgpack::type::ARRAY;
  body.via.array.size = static_cast<std::uint32_t>(n);
  body.via.array.ptr = root.via.array.ptr + 2;

  switch (type) {
    case Type::task: {
      Fields f(body, 4, "task", lim);
      Task m;
      m.job = job_name(f.text("job", lim.max_job_bytes, true), "task.job");
      m.key = f.text("key", lim.max_key_bytes, true);
      m.payload = f.bytes("payload", lim.max_payload_bytes);
      m.attempt = f.uint<std::uint32_t>("attempt");
      return m;
    }
    case Type::tasks: {
      Fields f(body, 1, "tasks", lim);
      TaskBatch m;
      const auto& tasks = f.array("tasks");
      if (tasks.via.array.size == 0) throw DecodeError("tasks.tasks is empty");
      m.tasks.reserve(tasks.via.array.size);
      for (std::uint32_t i = 0; i < tasks.via.array.size; ++i) {
        Fields tf(tasks.via.array.ptr[i], 4, "tasks.task", lim);
        Task t;
        t.job = job_name(tf.text("job", lim.max_job_bytes, true), "tasks.task.job");
        t.key = tf.text("key", lim.max_key_bytes, true);
        t.payload = tf.bytes("payload", lim.max_payload_bytes);
        t.attempt = tf.uint<std::uint32_t>("attempt");
        m.tasks.push_back(std::move(t));
      }
      return m;
    }
    case Type::submit: {
      Fields f(body, 5, "submit", lim);
      Submit m;
      m.job = job_name(f.text("job", lim.max_job_bytes, true), "submit.job");
      m.submission = f.text("submission", 128, true);
      m.seq = f.uint<std::uint32_t>("seq");
      m.requeue_failed = f.boolean("requeue_failed");
      const auto& items = f.array("items");
      m.items.reserve(items.via.array.size);
      for (std::uint32_t i = 0; i < items.via.array.size; ++i) {
        Fields item(items.via.array.ptr[i], 2, "submit.item", lim);
        SubmitItem it;
        it.key = item.text("key", lim.max_key_bytes, true);
        it.payload = item.bytes("payload", lim.max_payload_bytes);
        m.items.push_back(std::move(it));
      }
      return m;
    }
    case Type::report: {
      Fields f(body, 3, "report", lim);
      Report m;
      m.worker = f.text("worker", 256, false);
      const auto& updates = f.array("updates");
      m.updates.reserve(updates.via.array.size);
      for (std::uint32_t i = 0; i < updates.via.array.size; ++i) {
        Fields uf(updates.via.array.ptr[i], 6, "report.update", lim);
        Update u;
        const auto kind = uf.uint<std::uint8_t>("kind");
        if (kind < 1 || kind > 5)
          throw DecodeError("report.update.kind " + std::to_string(kind) + " is unknown");
        u.kind = static_cast<UpdateKind>(kind);
        u.job = job_name(uf.text("job", lim.max_job_bytes, true), "report.update.job");
        u.key = uf.text("key", lim.max_key_bytes, true);
        u.attempt = uf.uint<std::uint32_t>("attempt");
        u.retryable = uf.boolean("retryable");
        u.data = uf.bytes("data", lim.max_data_bytes);
        m.updates.push_back(std::move(u));
      }
      m.slots = f.uint<std::uint32_t>("slots");
      return m;
    }
    case Type::hello: {
      Fields f(body, 2, "hello", lim);
      Hello m;
      m.client = f.text("client", 128, true);
      m.job = f.text("job", lim.max_job_bytes, false);
      return m;
    }
    case Type::requeue: {
      Fields f(body, 2, "requeue", lim);
      Requeue m;
      m.client = f.text("client", 128, true);
      m.job = job_name(f.text("job", lim.max_job_bytes, true), "requeue.job");
      return m;
    }
    case Type::broker_hello: {
      Fields f(body, 1, "broker_hello", lim);
      BrokerHello m;
      m.instance = f.text("instance", 128, true);
      return m;
    }
    case Type::ack: {
      Fields f(body, 12, "ack", lim);
      Ack m;
      m.client = f.text("client", 128, true);
      const auto kind = f.uint<std::uint8_t>("kind");
      if (kind < 1 || kind > 4)
        throw DecodeError("ack.kind " + std::to_string(kind) + " is unknown");
      m.kind = static_cast<AckKind>(kind);
      m.seq = f.uint<std::uint32_t>("seq");
      m.accepted = f.uint<std::uint64_t>("accepted");
      m.duplicates = f.uint<std::uint64_t>("duplicates");
      m.skipped_completed = f.uint<std::uint64_t>("skipped_completed");
      m.requeued = f.uint<std::uint64_t>("requeued");
      m.already_queued = f.uint<std::uint64_t>("already_queued");
      m.rejected = f.uint<std::uint64_t>("rejected");
      m.skipped_failed = f.uint<std::uint64_t>("skipped_failed");
      m.changed = f.uint<std::uint64_t>("changed");
      m.error = f.text("error", 1024, false);
      return m;
    }
    case Type::control: {
      Fields f(body, 3, "control", lim);
      Control m;
      m.client = f.text("client", 128, true);
      m.job = job_name(f.text("job", lim.max_job_bytes, true), "control.job");
      const auto action = f.uint<std::uint8_t>("action");
      if (action < 1 || action > 4)
        throw DecodeError("control.action " + std::to_string(action) + " is unknown");
      m.action = static_cast<ControlAction>(action);
      return m;
    }
    case Type::cancel: {
      Fields f(body, 1, "cancel", lim);
      Cancel m;
      const auto& tasks = f.array("tasks");
      m.tasks.reserve(tasks.via.array.size);
      for (std::uint32_t i = 0; i < tasks.via.array.size; ++i) {
        Fields tf(tasks.via.array.ptr[i], 3, "cancel.task", lim);
        CancelledTask t;
        t.job = job_name(tf.text("job", lim.max_job_bytes, true), "cancel.task.job");
        t.key = tf.text("key", lim.max_key_bytes, true);
        t.attempt = tf.uint<std::uint32_t>("attempt");
        m.tasks.push_back(std::move(t));
      }
      return m;
    }
    case Type::progress: {
      Fields f(body, 16, "progress", lim);
      Progress m;
      m.job = f.text("job", lim.max_job_bytes, true);
      for (std::uint64_t* v :
           {&m.pending, &m.running, &m.completed, &m.failed, &m.cancelled, &m.batches, &m.updates,
            &m.busy_retries, &m.retried, &m.redelivered, &m.duplicates, &m.decode_errors}) {
        *v = f.uint<std::uint64_t>("counter");
      }
      m.paused = f.boolean("paused");
      m.time_ms = f.int64("time_ms");
      m.workers = f.uint<std::uint64_t>("workers");
      return m;
    }
  }
  throw DecodeError("unknown message type " + std::to_string(static_cast<int>(type)));
}

}  // namespace

std::string encode(const Message& message) {
  msgpack::sbuffer buffer(256);
  Packer pk(buffer);
  std::visit(Encoder{pk}, message);
  return std::string(buffer.data(), buffer.size());
}

namespace {
// Strings and bins of the unpacked object point into the frame instead of being copied into the
// zone: decode() copies out what it keeps before it returns, while the frame is alive.
bool reference_frame(msgpack::type::object_type /*type*/, std::size_t /*size*/,
                     void* /*user_data*/) {
  return true;
}
}  // namespace

Message decode(std::span<const std::byte> bytes, const Limits& limits) {
  if (bytes.empty()) throw DecodeError("empty frame");
  // One zone per thread, cleared after every message: clear() keeps its first chunk, so a
  // message costs no allocation of msgpack's own (a zone per message was two mallocs).
  thread_local msgpack::zone zone;
  struct ClearZone {  // NOLINT(cppcoreguidelines-special-member-functions): a scope guard
    ~ClearZone() { zone.clear(); }
  } clear_zone;
  msgpack::object root;
  try {
    std::size_t offset = 0;
    // Bound the unpacker so hostile headers (a 4-billion-element array) fail fast instead of
    // allocating: nothing we send has more than max_items elements or a bigger string.
    msgpack::unpack_limit unpack_limits(
        /*array*/ static_cast<std::size_t>(limits.max_items) + 16,
        /*map*/ 0,
        /*str*/ std::max(limits.max_payload_bytes, limits.max_data_bytes) + 1,
        /*bin*/ std::max(limits.max_payload_bytes, limits.max_data_bytes) + 1,
        /*ext*/ 0,
        /*depth*/ 4);
    root = msgpack::unpack(zone, reinterpret_cast<const char*>(bytes.data()), bytes.size(), offset,
                           reference_frame, nullptr, unpack_limits);
    if (offset != bytes.size()) throw DecodeError("trailing bytes after message");
  } catch (const DecodeError&) {
    throw;
  } catch (const msgpack::insufficient_bytes&) {
    throw DecodeError("truncated msgpack");
  } catch (const std::exception& e) {
    throw DecodeError(std::string("malformed msgpack: ") + e.what());
  }
  if (root.type != msgpack::type::ARRAY || root.via.array.size < 2) {
    throw DecodeError("not a topicflow message (expected [version, type, ...])");
  }
  const auto& version = root.via.array.ptr[0];
  if (version.type != msgpack::type::POSITIVE_INTEGER)
    throw DecodeError("version is not an integer");
  if (version.via.u64 != kVersion) {
    throw DecodeError("unsupported protocol version " + std::to_string(version.via.u64) +
                      " (this build speaks " + std::to_string(kVersion) + ")");
  }
  const auto& type = root.via.array.ptr[1];
  if (type.type != msgpack::type::POSITIVE_INTEGER || type.via.u64 < 1 || type.via.u64 > 11) {
    throw DecodeError("unknown message type");
  }
  return decode_body(static_cast<Type>(type.via.u64), root, limits);
}

std::string_view type_name(const Message& message) {
  static constexpr std::string_view kNames[] = {"task",    "submit",       "report", "hello",
                                                "requeue", "broker_hello", "ack",    "progress",
                                                "tasks",   "control",      "cancel"};
  return kNames[message.index()];
}

std::string_view to_string(UpdateKind kind) {
  switch (kind) {
    case UpdateKind::started: return "started";
    case UpdateKind::heartbeat: return "heartbeat";
    case UpdateKind::completed: return "completed";
    case UpdateKind::failed: return "failed";
    case UpdateKind::released: return "released";
  }
  return "unknown";
}

std::string ack_topic(std::string_view client) { return "ack/" + std::string(client); }
std::string progress_topic(std::string_view job) { return "progress/" + std::string(job); }

}  // namespace topicflow::wire
