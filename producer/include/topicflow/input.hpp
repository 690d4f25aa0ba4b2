#pragma once
// Reading topics from a producer's input, streaming: memory stays bounded by one line (itself
// bounded by the wire limits) whatever the size of the file.
//
// Formats: JSON Lines (a name ending in `.jsonl`, or `--format jsonl`): one object per line with a
// string `key` and a `payload` (a string is taken as is, any other JSON value as its compact JSON
// text, members in their original order); text (anything else): one topic per line, the line
// being both key and payload. Both: a trailing \r is stripped, blank lines are ignored, a UTF-8
// BOM at the start of the file is skipped.
//
// `-` means stdin, and a path that is not a regular file (a FIFO, /dev/stdin) is read once into a
// spool file (already unlinked, so nothing is left behind even on SIGKILL) because the producer
// reads its input twice: a validation pass, then the submitting pass.
//
// Errors throw InputError whose what() is "FILE:LINE: reason" (or "FILE: reason" when the file
// cannot be read at all). Not thread-safe.

#include <topicflow/wire.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace topicflow {

enum class InputFormat { text, jsonl };

class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Topic {
  std::string key;
  std::string payload;
  bool operator==(const Topic&) const = default;
};

// "auto" picks jsonl for a name ending in .jsonl, text otherwise; "text" and "jsonl" force it.
// Throws std::invalid_argument for anything else.
[[nodiscard]] InputFormat resolve_format(std::string_view path, std::string_view format);

// Parses one line (without its newline; a trailing \r is tolerated). Returns nothing for a blank
// line; throws InputError with the bare reason (no FILE:LINE prefix) for an invalid one.
[[nodiscard]] std::optional<Topic> parse_line(std::string_view line, InputFormat format,
                                              const wire::Limits& limits = {});

// Streams topics out of one open file. Move-only; closes the file on destruction.
class TopicReader {
 public:
  // `display_name` is what error messages call the file. `fd` is dup'ed and read with pread from
  // offset 0, so several readers of one file are independent.
  TopicReader(int fd, std::string display_name, InputFormat format,
              const wire::Limits& limits = {});

  // The next topic, or nothing at the end of the file. Throws InputError "FILE:LINE: reason".
  [[nodiscard]] std::optional<Topic> next();
  // Line number of the topic last returned (1-based).
  [[nodiscard]] std::uint64_t line() const noexcept { return line_; }

 private:
  enum class LineStatus { line, too_long, eof };
  LineStatus read_line(std::string& out);
  [[noreturn]] void fail(std::string_view reason) const;

  struct Fd {
    explicit Fd(int fd) noexcept : value(fd) {}
    Fd(Fd&& other) noexcept : value(std::exchange(other.value, -1)) {}
    Fd& operator=(Fd&& other) noexcept;
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd();
    int value;
  };
  Fd fd_;
  std::uint64_t offset_ = 0;  // file offset of chunk_'s end
  std::string chunk_;         // read buffer, fixed size
  std::size_t pos_ = 0;
  std::size_t end_ = 0;
  bool eof_ = false;
  std::string name_;
  InputFormat format_;
  wire::Limits limits_;
  std::size_t max_line_bytes_;
  std::uint64_t line_ = 0;
  std::string buffer_;
};

struct InputStats {
  std::uint64_t topics = 0;  // non-blank lines, duplicates included
  std::uint64_t lines = 0;
};

// One input: a path, or `-` for stdin. Owns the spool file when there is one.
class InputSource {
 public:
  // Opens (or spools) the input. `stdin_fd` is what `-` reads (tests pass a pipe). Throws
  // InputError when the file cannot be opened, std::invalid_argument for a bad format.
  explicit InputSource(const std::string& path, std::string_view format = "auto", int stdin_fd = 0,
                       const wire::Limits& limits = {});
  ~InputSource();
  InputSource(const InputSource&) = delete;
  InputSource& operator=(const InputSource&) = delete;

  // Reads every line once and checks it; throws InputError at the first bad line.
  [[nodiscard]] InputStats validate() const;
  // A fresh reader from the first line.
  [[nodiscard]] TopicReader open() const;

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] InputFormat format() const noexcept { return format_; }
  [[nodiscard]] bool spooled() const noexcept { return spooled_; }

 private:
  std::string name_;
  InputFormat format_;
  wire::Limits limits_;
  int fd_ = -1;
  bool spooled_ = false;
};

}  // namespace topicflow
