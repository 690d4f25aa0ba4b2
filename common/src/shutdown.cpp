#include <topicflow/shutdown.hpp>

#include <fcntl.h>
#include <unistd.h>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <string>

namespace topicflow {
namespace {
std::atomic<StopSignal*> g_stop{nullptr};
std::atomic<int> g_signals{0};

extern "C" void on_signal(int /*signo*/) {
  if (g_signals.fetch_add(1) >= 1) _exit(130);
  if (StopSignal* stop = g_stop.load()) stop->trigger();
}
}  // namespace

StopSignal::StopSignal() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
  }
  read_fd_ = fds[0];
  write_fd_ = fds[1];
}

StopSignal::~StopSignal() {
  StopSignal* self = this;
  g_stop.compare_exchange_strong(self, nullptr);
  ::close(read_fd_);
  ::close(write_fd_);
}

void StopSignal::trigger() noexcept {
  triggered_.store(true, std::memory_order_release);
  const char byte = 1;
  [[maybe_unused]] auto n = ::write(write_fd_, &byte, 1);  // EAGAIN: already readable
}

void install_signal_handlers(StopSignal& stop) {
  g_stop.store(&stop);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ignore, nullptr);
}

}  // namespace topicflow
