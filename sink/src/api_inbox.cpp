#include "api_inbox.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace topicflow::sink {

ApiInbox::ApiInbox() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));
}

ApiInbox::~ApiInbox() {
  close();
  ::close(fd_);
}

std::future<ApiResult> ApiInbox::post(std::shared_ptr<ApiCall> call) {
  auto future = call->result.get_future();
  {
    std::lock_guard lock(mutex_);
    if (closed_) {
      answer(*call, ApiResult{503, "the sink is stopping", {}});
      return future;
    }
    calls_.push_back(std::move(call));
  }
  const std::uint64_t one = 1;
  (void)!::write(fd_, &one, sizeof one);  // wakes the loop; a full counter means awake anyway
  return future;
}

std::vector<std::shared_ptr<ApiCall>> ApiInbox::take() {
  std::uint64_t count = 0;
  (void)!::read(fd_, &count, sizeof count);
  std::lock_guard lock(mutex_);
  return std::exchange(calls_, {});
}

void ApiInbox::close() {
  std::vector<std::shared_ptr<ApiCall>> left;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    left = std::exchange(calls_, {});
  }
  for (auto& call : left) answer(*call, ApiResult{503, "the sink is stopping", {}});
}

void answer(ApiCall& call, ApiResult result) {
  try {
    call.result.set_value(std::move(result));
  } catch (const std::future_error&) {  // answered already
  }
}

}  // namespace topicflow::sink
