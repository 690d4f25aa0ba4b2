#include <topicflow/input.hpp>
#include <topicflow/utf8.hpp>

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace topicflow {
namespace {

constexpr std::size_t kReadChunkBytes = std::size_t{64} * 1024;
constexpr std::string_view kBom = "\xEF\xBB\xBF";

std::string errno_text(int err) { return std::strerror(err); }

bool blank(std::string_view line) {
  return line.find_first_not_of(" \t\f\v") == std::string_view::npos;
}

void check_key(std::string_view key, const wire::Limits& limits) {
  if (key.empty()) throw InputError("empty key");
  if (!valid_utf8(key)) throw InputError("key is not valid UTF-8");
  if (key.size() > limits.max_key_bytes) {
    throw InputError("key is " + std::to_string(key.size()) + " bytes, more than the limit of " +
                     std::to_string(limits.max_key_bytes));
  }
}

void check_payload(std::string_view payload, const wire::Limits& limits) {
  if (payload.size() > limits.max_payload_bytes) {
    throw InputError("payload is " + std::to_string(payload.size()) +
                     " bytes, more than the limit of " + std::to_string(limits.max_payload_bytes));
  }
}

// nlohmann's messages start with "[json.exception.parse_error.101] parse error at line 1, ...".
std::string json_reason(const std::exception& e) {
  std::string_view what = e.what();
  if (what.starts_with("[json.exception.")) {
    if (auto close = what.find("] "); close != std::string_view::npos)
      what.remove_prefix(close + 2);
  }
  return "invalid JSON: " + std::string(what);
}

Topic parse_jsonl(std::string_view line, const wire::Limits& limits) {
  // Checked first so invalid bytes get the same reason in both formats.
  if (!valid_utf8(line)) throw InputError("line is not valid UTF-8");
  nlohmann::ordered_json doc;
  try {
    doc = nlohmann::ordered_json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(json_reason(e));
  }
  if (!doc.is_object()) throw InputError(R"(expected a JSON object with "key" and "payload")");
  const auto key = doc.find("key");
  if (key == doc.end()) throw InputError(R"(missing "key")");
  if (!key->is_string()) throw InputError(R"("key" must be a string)");
  Topic topic;
  topic.key = key->get<std::string>();
  check_key(topic.key, limits);
  const auto payload = doc.find("payload");
  if (payload == doc.end()) throw InputError(R"(missing "payload")");
  topic.payload = payload->is_string() ? payload->get<std::string>() : payload->dump();
  check_payload(topic.payload, limits);
  return topic;
}

// Copies `from` to an unlinked temp file; returns its descriptor.
int spool(int from, const std::string& name) {
  const char* dir = std::getenv("TMPDIR");
  std::string pattern =
      std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/topicflow-spool-XXXXXX";
  std::vector<char> path(pattern.begin(), pattern.end());
  path.push_back('\0');
  const int fd = ::mkstemp(path.data());
  if (fd < 0)
    throw InputError(name + ": cannot create a spool file in " + pattern + ": " +
                     errno_text(errno));
  // Unlinked at once: the spool disappears with the process, however it ends.
  ::unlink(path.data());
  std::vector<char> buffer(kReadChunkBytes);
  for (;;) {
    const auto n = ::read(from, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw InputError(name + ": read error: " + errno_text(err));
    }
    if (n == 0) break;
    const char* p = buffer.data();
    auto left = static_cast<std::size_t>(n);
    while (left > 0) {
      const auto w = ::write(fd, p, left);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        const int err = errno;
        ::close(fd);
        throw InputError(name + ": cannot write the spool file: " + errno_text(err));
      }
      p += w;
      left -= static_cast<std::size_t>(w);
    }
  }
  return fd;
}

}  // namespace

InputFormat resolve_format(std::string_view path, std::string_view format) {
  if (format == "text") return InputFormat::text;
  if (format == "jsonl") return InputFormat::jsonl;
  if (format == "auto") return path.ends_with(".jsonl") ? InputFormat::jsonl : InputFormat::text;
  throw std::invalid_argument("unknown input format '" + std::string(format) +
                              "' (auto, text, jsonl)");
}

std::optional<Topic> parse_line(std::string_view line, InputFormat format,
                                const wire::Limits& limits) {
  if (line.ends_with('\r')) line.remove_suffix(1);
  if (blank(line)) return std::nullopt;
  if (format == InputFormat::jsonl) return parse_jsonl(line, limits);
  check_key(line, limits);
  check_payload(line, limits);
  return Topic{std::string(line), std::string(line)};
}

// ---- TopicReader ---------------------------------------------------------------------------

TopicReader::Fd& TopicReader::Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    if (value >= 0) ::close(value);
    value = std::exchange(other.value, -1);
  }
  return *this;
}

TopicReader::Fd::~Fd() {
  if (value >= 0) ::close(value);
}

TopicReader::TopicReader(int fd, std::string display_name, InputFormat format,
                         const wire::Limits& limits)
    : fd_(::fcntl(fd, F_DUPFD_CLOEXEC, 0)),
      chunk_(kReadChunkBytes, '\0'),
      name_(std::move(display_name)),
      format_(format),
      limits_(limits),
      // A text line is its key; a JSONL line may escape every byte (\u00XX is 6 bytes).
      max_line_bytes_(format == InputFormat::text
                          ? limits.max_key_bytes + kBom.size() + 1
                          : 6 * (limits.max_key_bytes + limits.max_payload_bytes) +
                                std::size_t{64} * 1024) {
  if (fd_.value < 0) throw InputError(name_ + ": cannot read: " + errno_text(errno));
}

void TopicReader::fail(std::string_view reason) const {
  throw InputError(name_ + ":" + std::to_string(line_) + ": " + std::string(reason));
}

TopicReader::LineStatus TopicReader::read_line(std::string& out) {
  out.clear();
  bool any = false;
  bool too_long = false;
  for (;;) {
    if (pos_ == end_) {
      if (eof_) {
        if (!any) return LineStatus::eof;
        return too_long ? LineStatus::too_long : LineStatus::line;
      }
      ssize_t n = 0;
      do {
        n = ::pread(fd_.value, chunk_.data(), chunk_.size(), static_cast<off_t>(offset_));
      } while (n < 0 && errno == EINTR);
      if (n < 0) throw InputError(name_ + ": read error: " + errno_text(errno));
      offset_ += static_cast<std::uint64_t>(n);
      pos_ = 0;
      end_ = static_cast<std::size_t>(n);
      if (n == 0) eof_ = true;
      continue;
    }
    any = true;
    const char* start = chunk_.data() + pos_;
    const auto* newline = static_cast<const char*>(std::memchr(start, '\n', end_ - pos_));
    const auto n = newline != nullptr ? static_cast<std::size_t>(newline - start) : end_ - pos_;
    if (!too_long) {
      if (out.size() + n > max_line_bytes_) {
        too_long = true;
        out.clear();
        out.shrink_to_fit();
      } else {
        out.append(start, n);
      }
    }
    pos_ += n;
    if (newline != nullptr) {
      ++pos_;
      return too_long ? LineStatus::too_long : LineStatus::line;
    }
  }
}

std::optional<Topic> TopicReader::next() {
  for (;;) {
    const auto status = read_line(buffer_);
    if (status == LineStatus::eof) return std::nullopt;
    ++line_;
    if (status == LineStatus::too_long) {
      fail(format_ == InputFormat::text
               ? "line is longer than the key limit of " + std::to_string(limits_.max_key_bytes) +
                     " bytes"
               : "line is longer than " + std::to_string(max_line_bytes_) + " bytes");
    }
    std::string_view line = buffer_;
    if (line_ == 1 && line.starts_with(kBom)) line.remove_prefix(kBom.size());
    try {
      if (auto topic = parse_line(line, format_, limits_)) return topic;
    } catch (const InputError& e) {
      fail(e.what());
    }
  }
}

// ---- InputSource ---------------------------------------------------------------------------

InputSource::InputSource(const std::string& path, std::string_view format, int stdin_fd,
                         const wire::Limits& limits)
    : name_(path == "-" ? "<stdin>" : path),
      format_(resolve_format(path, format)),
      limits_(limits) {
  if (path.empty()) throw InputError("no input file given");
  if (path == "-") {
    fd_ = spool(stdin_fd, name_);
    spooled_ = true;
    return;
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError(path + ": cannot open: " + errno_text(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw InputError(path + ": cannot open: " + errno_text(err));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    throw InputError(path + ": is a directory");
  }
  if (S_ISREG(st.st_mode)) {
    fd_ = fd;
    return;
  }
  // A FIFO or a device can be read only once, and the producer reads its input twice.
  try {
    fd_ = spool(fd, name_);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  spooled_ = true;
}

InputSource::~InputSource() {
  if (fd_ >= 0) ::close(fd_);
}

InputStats InputSource::validate() const {
  auto reader = open();
  InputStats stats;
  while (reader.next()) ++stats.topics;
  stats.lines = reader.line();
  return stats;
}

TopicReader InputSource::open() const { return {fd_, name_, format_, limits_}; }

}  // namespace topicflow
