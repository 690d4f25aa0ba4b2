#include <topicflow/log.hpp>
#include <topicflow/supervisor.hpp>

#include <csignal>
#include <stdexcept>
#include <utility>

namespace topicflow::cli {
namespace {

class RealProcess final : public Process {
 public:
  RealProcess(const std::vector<std::string>& argv, const SpawnOptions& options)
      : child_(argv, options) {}
  RealProcess(const std::function<int()>& body, const std::string& name,
              const SpawnOptions& options)
      : child_(body, name, options) {}
  [[nodiscard]] pid_t pid() const noexcept override { return child_.pid(); }
  [[nodiscard]] bool running() const noexcept override { return child_.running(); }
  std::optional<ExitStatus> poll_exit() noexcept override { return child_.poll_exit(); }
  void terminate(int signal) noexcept override { child_.terminate(signal); }
  std::optional<ExitStatus> wait_for(std::chrono::milliseconds timeout) noexcept override {
    return child_.wait_for(timeout);
  }
  ExitStatus stop(int signal, std::chrono::milliseconds grace) noexcept override {
    return child_.stop(signal, grace);
  }

 private:
  ChildProcess child_;
};

}  // namespace

Launcher process_launcher() {
  return [](const std::vector<std::string>& argv, const SpawnOptions& options) {
    return std::unique_ptr<Process>(std::make_unique<RealProcess>(argv, options));
  };
}

std::unique_ptr<Process> fork_process(const std::function<int()>& body, const std::string& name,
                                      const SpawnOptions& options) {
  return std::make_unique<RealProcess>(body, name, options);
}

Supervisor::Supervisor(Launcher launcher, const Clock& clock)
    : launcher_(std::move(launcher)), clock_(clock) {}

Child& Supervisor::add(std::string name, std::vector<std::string> argv, bool restartable,
                       SpawnOptions options) {
  auto& c = children_.emplace_back();
  c.name = std::move(name);
  c.argv = std::move(argv);
  c.restartable = restartable;
  c.options = std::move(options);
  return c;
}

void Supervisor::start(Child& c) {
  c.process = launcher_(c.argv, c.options);
  c.started_ms = clock_.steady_ms();
  if (c.first_started_ms == 0) c.first_started_ms = c.started_ms;
  c.restart_at.reset();
  spdlog::debug("started {} (pid {}): {}", c.name, c.process->pid(), join(c.argv));
}

Supervisor::~Supervisor() {
  {
    const std::lock_guard lock(mutex_);
    cancel_ = true;
    exit_ = true;
  }
  changed_.notify_all();
  if (starter_.joinable()) starter_.join();
}

void Supervisor::start_in_background(std::vector<Child*> group) {
  if (starter_.joinable()) throw std::logic_error("Supervisor: one background group at a time");
  {
    const std::lock_guard lock(mutex_);
    pending_ = group.size();
    cancel_ = false;
  }
  starter_ = std::thread([this, group = std::move(group)] {
    for (auto* c : group) {
      Started started{c, nullptr, {}};
      if (!cancel_) {
        try {
          started.process = launcher_(c->argv, c->options);
        } catch (const std::exception& e) {
          started.error = e.what();
        }
      }
      {
        const std::lock_guard lock(mutex_);
        --pending_;
        if (started.process || !started.error.empty()) started_.push_back(std::move(started));
      }
      changed_.notify_all();
    }
    // Linux sends PR_SET_PDEATHSIG when the thread that forked a child ends, not its process:
    // this thread lives as long as the supervisor, or every child it started would be killed.
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return exit_; });
  });
}

std::size_t Supervisor::starting() const {
  const std::lock_guard lock(mutex_);
  return pending_ + started_.size();
}

std::optional<Fatal> Supervisor::adopt_started() {
  std::vector<Started> started;
  {
    const std::lock_guard lock(mutex_);
    started.swap(started_);
  }
  std::optional<Fatal> fatal;
  for (auto& s : started) {
    if (!s.process) {
      if (!fatal) fatal = Fatal{"cannot start " + s.child->name + ": " + s.error, 1};
      continue;
    }
    auto& c = *s.child;
    c.process = std::move(s.process);
    c.started_ms = clock_.steady_ms();
    if (c.first_started_ms == 0) c.first_started_ms = c.started_ms;
    c.restart_at.reset();
    spdlog::debug("started {} (pid {}): {}", c.name, c.process->pid(), join(c.argv));
  }
  return fatal;
}

void Supervisor::finish_background() {
  {
    std::unique_lock lock(mutex_);
    cancel_ = true;
    changed_.wait(lock, [&] { return pending_ == 0; });
  }
  (void)adopt_started();
}

std::optional<Fatal> Supervisor::supervise() {
  if (auto fatal = adopt_started()) return fatal;
  const auto now = clock_.steady_ms();
  for (auto& c : children_) {
    if (!c.restartable || c.first_started_ms == 0) continue;
    if (c.restart_at) {
      if (now >= *c.restart_at) {
        try {
          start(c);
          ++c.restarts;
        } catch (const std::exception& e) {
          return Fatal{"cannot restart " + c.name + ": " + e.what(), 1};
        }
      }
      continue;
    }
    const auto status = c.process->poll_exit();
    if (!status) continue;
    const auto pid = std::to_string(c.process->pid());
    if (!status->signaled() && status->code == 2 && !c.ready)
      return Fatal{c.name + " (pid " + pid + ") rejected its options", 2};
    const bool at_startup =
        c.restarts == 0 && !c.ready && now - c.first_started_ms < kStartupGraceMs;
    if (at_startup && !status->signaled()) {
      return Fatal{c.name + " (pid " + pid + ") exited with " + status->describe() + " at startup",
                   1};
    }
    const auto ran_ms = now - c.started_ms;
    if (ran_ms >= kHealthyRunMs) c.crashes = 0;
    const auto delay = std::max<std::int64_t>(kMinRestartMs, c.backoff.delay(c.crashes++));
    spdlog::warn("{} (pid {}) exited with {} {} ({} ms after it started); restarting in {} ms",
                 c.name, pid, status->describe(), at_startup ? "at startup" : "mid-run", ran_ms,
                 delay);
    c.restart_at = now + delay;
  }
  return std::nullopt;
}

void Supervisor::stop(const std::vector<Child*>& group, std::chrono::milliseconds grace) {
  finish_background();
  for (auto* c : group) {
    if (c->process) c->process->terminate(SIGTERM);
  }
  const auto deadline = std::chrono::steady_clock::now() + grace;
  for (auto* c : group) {
    if (!c->process || !c->process->running()) continue;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (c->process->wait_for(std::max(left, std::chrono::milliseconds(0)))) continue;
    spdlog::warn("{} (pid {}) did not stop within {} ms; killing it", c->name, c->process->pid(),
                 grace.count());
    c->process->stop(SIGKILL, std::chrono::milliseconds(2000));
  }
  for (auto* c : group) c->restart_at.reset();
}

std::string Supervisor::restarts_text() const {
  std::string text;
  for (const auto& c : children_) {
    if (c.restarts == 0) continue;
    text += (text.empty() ? "" : ", ") + c.name + " x" + std::to_string(c.restarts);
  }
  return text;
}

unsigned Supervisor::restarts() const noexcept {
  unsigned n = 0;
  for (const auto& c : children_) n += c.restarts;
  return n;
}

std::string Supervisor::join(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

}  // namespace topicflow::cli
