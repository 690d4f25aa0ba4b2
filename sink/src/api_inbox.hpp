#pragma once
// The HTTP API's way into the sink's loop. HTTP handler threads never touch the write
// connection: a submission or a job action becomes an ApiCall, posted here; the loop takes it
// (it polls fd(), an eventfd), applies it in its next commit and answers it after COMMIT
// through the call's promise. Thread-safe: post() from any thread, take() from the loop.

#include <topicflow/wire.hpp>

#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace topicflow::sink {

struct ApiResult {
  int status = 200;   // HTTP status: 200, or 404 (unknown job), 409 (state forbids), 503
  std::string error;  // one line, when status is not 200
  wire::Ack counts;   // submit: what happened to the topics; actions: `changed`
};

struct ApiCall {
  enum class Kind : std::uint8_t { submit, pause, resume, cancel, retry_failed, remove };
  Kind kind = Kind::submit;
  std::string job;
  std::vector<wire::SubmitItem> items;  // submit
  std::promise<ApiResult> result;
};

class ApiInbox {
 public:
  ApiInbox();
  ~ApiInbox();
  ApiInbox(const ApiInbox&) = delete;
  ApiInbox& operator=(const ApiInbox&) = delete;

  // Queues a call for the loop; the future is answered after its commit (or with 503 when the
  // sink stops first).
  std::future<ApiResult> post(std::shared_ptr<ApiCall> call);
  // The loop: everything queued so far.
  [[nodiscard]] std::vector<std::shared_ptr<ApiCall>> take();
  // Readable while calls are queued (for the loop's poll).
  [[nodiscard]] int fd() const noexcept { return fd_; }
  // Answers every queued and future call with 503 (the sink is stopping).
  void close();

 private:
  int fd_ = -1;
  std::mutex mutex_;
  std::vector<std::shared_ptr<ApiCall>> calls_;
  bool closed_ = false;
};

// Answers a call (once; later answers are ignored).
void answer(ApiCall& call, ApiResult result);

}  // namespace topicflow::sink
