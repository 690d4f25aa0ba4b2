// exec-persistent:COMMAND: long-lived co-processes speaking JSON Lines, one per running task.
//
// A co-process is checked out of the idle list for one task (or started when none is idle), so
// the number alive never exceeds the number of tasks running at once. One poll() loop per task
// writes the request, reads the response line and drains stderr, and watches the co-process's
// pidfd, the task's deadline and its cancellation. Any doubt about a co-process's state (it
// died, timed out, was cancelled, wrote something that is not one response line) ends it: its
// group is SIGKILLed while the leader is an unreaped zombie (so the group id cannot have been
// reused), then it is reaped. The next task starts a fresh one.

#include <topicflow/clock.hpp>
#include <topicflow/handler.hpp>
#include <topicflow/log.hpp>
#include <topicflow/utf8.hpp>

#include "subprocess.hpp"

#include <nlohmann/json.hpp>

#include <poll.h>
#include <algorithm>
#include <array>

namespace topicflow {

using subprocess::Fd;

struct PersistentExecHandler::CoProcess {
  pid_t pid = -1;
  Fd in;     // its stdin (we write requests)
  Fd out;    // its stdout (we read responses)
  Fd err;    // its stderr (we keep a tail for error texts)
  Fd pidfd;  // readable once it exits (-1 where unavailable)
  std::string errors;
  std::uint64_t tasks = 0;

  CoProcess() = default;
  CoProcess(const CoProcess&) = delete;
  CoProcess& operator=(const CoProcess&) = delete;
  ~CoProcess() { kill_and_reap(); }

  // SIGKILL to the group (its leader not reaped yet), then reap. Returns the wait status.
  int kill_and_reap() noexcept {
    if (pid <= 0) return -1;
    ::kill(-pid, SIGKILL);
    const int status = subprocess::reap(pid);
    pid = -1;
    return status;
  }
};

namespace {

constexpr std::int64_t kSliceMs = 20;  // how often a waiting task checks its token
constexpr std::int64_t kExitWaitMs =
    200;  // after stdout closes, how long to wait for the exit status
constexpr std::int64_t kShutdownMs = 1000;  // at destruction, how long idle ones get to exit on EOF
constexpr std::size_t kLineSlack = 64U << 10;  // response line bound: 2 * max_result_bytes + this
constexpr std::size_t kQuoteBytes = 200;       // how much of a bad response an error quotes

std::string base64(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const auto n = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16U |
                   static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8U |
                   static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 2]));
    for (const unsigned shift : {18U, 12U, 6U, 0U}) out += kAlphabet[(n >> shift) & 63U];
  }
  if (i < bytes.size()) {
    std::uint32_t n = static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16U;
    if (i + 1 < bytes.size())
      n |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 8U;
    out += kAlphabet[(n >> 18U) & 63U];
    out += kAlphabet[(n >> 12U) & 63U];
    out += i + 1 < bytes.size() ? kAlphabet[(n >> 6U) & 63U] : '=';
    out += '=';
  }
  return out;
}

std::string request_line(const TaskView& task) {
  nlohmann::ordered_json request = {
      {"job", task.job}, {"key", task.key}, {"attempt", task.attempt}};
  if (valid_utf8(task.payload)) {
    request["payload"] = task.payload;
  } else {
    request["payload_base64"] = base64(task.payload);
  }
  return request.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

// At most `max` bytes of `text`, not cutting a UTF-8 sequence.
std::string utf8_prefix(std::string text, std::size_t max) {
  if (text.size() <= max) return text;
  std::size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0U) == 0x80U) --end;
  text.resize(end);
  return text;
}

std::string quote(const std::string& line) {
  auto text = subprocess::error_tail(utf8_prefix(line, kQuoteBytes), kQuoteBytes);
  return line.size() > kQuoteBytes ? text + "..." : text;
}

// The outcome of a response line; `reuse` false when the co-process must not get another task.
Outcome parse_response(const std::string& line, const HandlerOptions& options, bool& reuse) {
  auto bad = [&](const std::string& why) {
    reuse = false;
    return Outcome::failed("bad response from the co-process (" + why + "): " + quote(line), false);
  };
  // ordered_json: a result object is stored with its keys in the order the co-process wrote them.
  const auto doc = nlohmann::ordered_json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return bad("not JSON");
  if (!doc.is_object()) return bad("not a JSON object");
  const auto status = doc.find("status");
  if (status == doc.end() || !status->is_string()) return bad("no \"status\" string");
  const auto text_of = [&](const char* field) -> std::string {
    const auto it = doc.find(field);
    if (it == doc.end() || it->is_null()) return {};
    return it->is_string() ? it->get<std::string>() : it->dump();
  };
  const auto& s = status->get_ref<const std::string&>();
  if (s == "completed") {
    auto result = text_of("result");
    if (result.size() > options.max_result_bytes)
      result.resize(options.max_result_bytes);  // as exec: truncated
    return Outcome::completed(std::move(result));
  }
  if (s == "retry" || s == "failed") {
    auto error = utf8_prefix(text_of("error"), options.max_error_bytes);
    if (error.empty()) error = "the co-process answered \"" + s + "\" without an error";
    return Outcome::failed(std::move(error), s == "retry");
  }
  return bad("status \"" + quote(s) + "\" is not completed, retry or failed");
}

// The co-process ended before answering. Always retryable: its answer is the response line, so
// dying is an accident (OOM killer, a bug, a crash on this input), not a verdict on the topic;
// --max-attempts bounds the retries of a topic that crashes it every time.
std::string signal_name(int sig) {
  const char* name = ::sigabbrev_np(sig);
  return std::to_string(sig) +
         (name != nullptr ? std::string(" (SIG") + name + ")" : std::string());
}

Outcome exited_outcome(int status, std::string errors, const HandlerOptions& options) {
  auto tail = subprocess::error_tail(std::move(errors), options.max_error_bytes);
  const auto with_tail = [&](const std::string& text) {
    return tail.empty() ? text : text + ": " + tail;
  };
  if (status < 0) return Outcome::failed(subprocess::errno_text("waitpid", errno), true);
  if (WIFEXITED(status)) {
    const int code = WEXITSTATUS(status);
    std::string text = "co-process exited with status " + std::to_string(code);
    // /bin/sh reports a command killed by signal N as 128 + N.
    if (code > 128 && code < 128 + 65)
      text += " (the shell's report of signal " + signal_name(code - 128) + ")";
    return Outcome::failed(with_tail(text + " before answering"), true);
  }
  if (WIFSIGNALED(status)) {
    return Outcome::failed(with_tail("co-process killed by signal " +
                                     signal_name(WTERMSIG(status)) + " before answering"),
                           true);
  }
  return Outcome::failed("co-process: unexpected wait status " + std::to_string(status), true);
}

}  // namespace

PersistentExecHandler::PersistentExecHandler(std::string command, const HandlerOptions& options)
    : command_(std::move(command)), options_(options) {
  if (command_.empty()) throw std::invalid_argument("exec-persistent handler: empty command");
}

PersistentExecHandler::~PersistentExecHandler() {
  // EOF on every idle co-process's stdin is its signal to finish; then the group is killed.
  std::vector<std::unique_ptr<CoProcess>> all;
  {
    const std::scoped_lock lock(mutex_);
    all.swap(idle_);
  }
  for (auto& co : all) co->in.reset();
  const auto until = steady_ms() + kShutdownMs;
  while (steady_ms() < until && !std::all_of(all.begin(), all.end(), [](const auto& co) {
           return subprocess::has_exited(co->pid);
         })) {
    ::usleep(5000);
  }
  all.clear();  // kill_and_reap each
}

std::size_t PersistentExecHandler::idle() const {
  const std::scoped_lock lock(mutex_);
  return idle_.size();
}

std::unique_ptr<PersistentExecHandler::CoProcess> PersistentExecHandler::spawn(std::string& error) {
  auto in = subprocess::make_pipe();
  auto out = subprocess::make_pipe();
  auto err = subprocess::make_pipe();
  auto env = subprocess::inherited_environment();
  env.emplace_back("TOPICFLOW_PERSISTENT=1");
  auto co = std::make_unique<CoProcess>();
  if (const int rc = subprocess::spawn_shell(command_, std::move(env), in.read.get(),
                                             out.write.get(), err.write.get(), co->pid);
      rc != 0) {
    co->pid = -1;
    error = subprocess::errno_text("cannot start /bin/sh", rc);
    return nullptr;
  }
  co->in = std::move(in.write);
  co->out = std::move(out.read);
  co->err = std::move(err.read);
  subprocess::set_nonblocking(co->in.get());
  subprocess::set_nonblocking(co->out.get());
  subprocess::set_nonblocking(co->err.get());
  co->pidfd = subprocess::open_pidfd(co->pid);
  const auto n = started_.fetch_add(1) + 1;
  spdlog::debug("exec-persistent: started co-process {} (#{})", co->pid, n);
  return co;
}

std::unique_ptr<PersistentExecHandler::CoProcess> PersistentExecHandler::checkout(
    std::string& error) {
  for (;;) {
    std::unique_ptr<CoProcess> co;
    {
      const std::scoped_lock lock(mutex_);
      if (idle_.empty()) break;
      co = std::move(idle_.back());
      idle_.pop_back();
    }
    if (!subprocess::has_exited(co->pid)) {
      pollfd out{co->out.get(), POLLIN, 0};
      if (::poll(&out, 1, 0) == 0) return co;
      // Output nobody asked for (a second response line, a stray print): it would be taken for
      // the next task's response, so this co-process is out of step.
      spdlog::warn("exec-persistent: co-process {} wrote to stdout between tasks; restarting it",
                   co->pid);
      continue;  // co's destructor kills and reaps it
    }
    const int status = co->kill_and_reap();
    spdlog::warn("exec-persistent: co-process exited while idle ({}); starting another",
                 exited_outcome(status, std::move(co->errors), options_).data);
  }
  return spawn(error);
}

Outcome PersistentExecHandler::handle(const TaskView& task, const CancelToken& cancel) {
  std::string error;
  std::unique_ptr<CoProcess> co;
  try {
    co = checkout(error);
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!co) return Outcome::failed("exec-persistent: " + error, true);
  co->errors.clear();
  ++co->tasks;

  const std::string request = request_line(task);
  const std::size_t max_line = 2 * options_.max_result_bytes + kLineSlack;
  std::size_t written = 0;
  std::string line;        // the response line so far
  std::string leftover;    // bytes after the response line (a protocol violation)
  bool complete = false;   // `line` holds a whole line
  bool oversized = false;  // the line outgrew max_line: its rest is being discarded
  std::int64_t exited_at = -1;
  std::int64_t stdout_closed_at = -1;
  enum class Stop : std::uint8_t { none, exited, timeout, cancelled, internal } stop = Stop::none;
  std::string internal_error;

  // Takes stdout bytes: completes the line, or drops the oversized line's bytes up to its end.
  const auto take = [&](const char* data, std::size_t size) {
    const std::string_view chunk(data, size);
    const auto newline = chunk.find('\n');
    const auto head = chunk.substr(0, newline);
    if (!oversized) line.append(head);
    if (!oversized && line.size() > max_line) {
      oversized = true;
      line.clear();
    }
    if (newline != std::string_view::npos) {
      complete = true;
      leftover.assign(chunk.substr(newline + 1));
    }
  };

  try {
    subprocess::SigpipeGuard sigpipe;
    std::array<char, 65536> buffer{};
    while (!complete) {
      const auto now = steady_ms();
      if (cancel.expired()) {
        stop = Stop::timeout;
        break;
      }
      if (cancel.cancelled()) {
        stop = Stop::cancelled;
        break;
      }
      // Gone: once it has exited and stdout is drained (a background child of its own may hold
      // stdout open: not for long), or it closed stdout and did not exit soon after.
      if (exited_at < 0 && subprocess::has_exited(co->pid)) exited_at = now;
      if ((exited_at >= 0 && (stdout_closed_at >= 0 || now - exited_at >= kExitWaitMs)) ||
          (stdout_closed_at >= 0 && now - stdout_closed_at >= kExitWaitMs)) {
        stop = Stop::exited;
        break;
      }
      std::array<pollfd, 4> fds{};
      nfds_t n = 0;
      const auto add = [&](const Fd& fd, short events) {
        if (fd.open()) fds[n++] = pollfd{fd.get(), events, 0};
      };
      add(co->out, POLLIN);
      add(co->err, POLLIN);
      if (written < request.size()) add(co->in, POLLOUT);
      if (exited_at < 0) add(co->pidfd, POLLIN);
      const std::int64_t tick = exited_at >= 0 || stdout_closed_at >= 0 ? 5 : kSliceMs;
      const auto slice = std::min(tick, cancel.deadline_ms() - now);
      const int ready = ::poll(fds.data(), n, static_cast<int>(std::max<std::int64_t>(slice, 0)));
      if (ready < 0) {
        if (errno == EINTR) continue;
        throw std::runtime_error(subprocess::errno_text("poll", errno));
      }
      for (nfds_t i = 0; i < n && !complete; ++i) {
        if (fds[i].revents == 0) continue;
        const int fd = fds[i].fd;
        if (fd == co->pidfd.get()) continue;  // exit is confirmed by has_exited() at the loop top
        if (co->in.open() && fd == co->in.get()) {
          const auto w = ::write(fd, request.data() + written, request.size() - written);
          if (w >= 0) {
            written += static_cast<std::size_t>(w);
          } else if (errno == EPIPE) {
            sigpipe.saw_epipe();
            co->in.reset();  // it closed its stdin: it is going, stdout's EOF will follow
            written = request.size();
          } else if (errno != EAGAIN && errno != EINTR) {
            throw std::runtime_error(subprocess::errno_text("write to the co-process", errno));
          }
          continue;
        }
        const bool is_out = co->out.open() && fd == co->out.get();
        const auto r = ::read(fd, buffer.data(), buffer.size());
        if (r > 0) {
          const auto got = static_cast<std::size_t>(r);
          if (is_out) {
            take(buffer.data(), got);
          } else {
            co->errors.append(buffer.data(), got);
            if (co->errors.size() > 2 * options_.max_error_bytes + buffer.size()) {
              co->errors.erase(0, co->errors.size() - options_.max_error_bytes);
            }
          }
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
          if (is_out) {
            co->out.reset();
            stdout_closed_at = steady_ms();
          } else {
            co->err.reset();
          }
        }
      }
    }
  } catch (const std::exception& e) {
    stop = Stop::internal;
    internal_error = e.what();
  }

  switch (stop) {
    case Stop::timeout:
      co->kill_and_reap();
      return Outcome::failed("timed out after " + std::to_string(cancel.timeout_ms()) + " ms",
                             true);
    case Stop::cancelled: co->kill_and_reap(); return Outcome::failed("cancelled", true);
    case Stop::internal:
      co->kill_and_reap();
      return Outcome::failed("exec-persistent: " + internal_error, true);
    case Stop::exited: {
      // Drain what stderr still holds (it exited, so this ends at EOF) for the error text.
      std::array<char, 4096> rest{};
      for (ssize_t r = 0;
           co->err.open() && (r = ::read(co->err.get(), rest.data(), rest.size())) > 0;) {
        co->errors.append(rest.data(), static_cast<std::size_t>(r));
      }
      const bool really_exited = subprocess::has_exited(co->pid);
      const int status = co->kill_and_reap();
      if (!really_exited) {
        auto tail = subprocess::error_tail(std::move(co->errors), options_.max_error_bytes);
        return Outcome::failed(
            "co-process closed its stdout without answering" + (tail.empty() ? "" : ": " + tail),
            false);
      }
      return exited_outcome(status, std::move(co->errors), options_);
    }
    case Stop::none: break;
  }

  if (oversized) {
    if (leftover.empty() && written == request.size()) give_back(std::move(co));
    return Outcome::failed("response line longer than " + std::to_string(max_line) +
                               " bytes (2 x --max-result-bytes + 64 KiB)",
                           false);
  }
  bool reuse = true;
  auto outcome = parse_response(line, options_, reuse);
  if (!leftover.empty()) {
    spdlog::warn(
        "exec-persistent: co-process {} wrote more than one line for {}/{} ({}); restarting it",
        co->pid, task.job, task.key, quote(leftover));
    reuse = false;
  }
  if (written < request.size()) {
    // It answered before taking the whole request: the rest would be read as the next one.
    spdlog::warn(
        "exec-persistent: co-process {} answered {}/{} before reading all of its request; "
        "restarting it",
        co->pid, task.job, task.key);
    reuse = false;
  }
  if (reuse) give_back(std::move(co));
  return outcome;
}

void PersistentExecHandler::give_back(std::unique_ptr<CoProcess> co) {
  const std::scoped_lock lock(mutex_);
  idle_.push_back(std::move(co));
}

}  // namespace topicflow
