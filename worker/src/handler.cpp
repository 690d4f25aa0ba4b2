#include <topicflow/clock.hpp>
#include <topicflow/handler.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <random>
#include <stdexcept>
#include <system_error>

namespace topicflow {

// ---- CancelToken ---------------------------------------------------------------------------

CancelToken::CancelToken(std::int64_t timeout_ms) {
  if (timeout_ms > 0) {
    timeout_ms_ = timeout_ms;
    deadline_ms_ = steady_ms() + timeout_ms;
  }
}

void CancelToken::cancel() noexcept {
  {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
  }
  cv_.notify_all();
}

void CancelToken::expire() noexcept {
  expired_.store(true);
  cancel();
}

bool CancelToken::cancelled() const noexcept {
  std::lock_guard lock(mutex_);
  return cancelled_;
}

bool CancelToken::expired() const noexcept {
  return expired_.load() || steady_ms() >= deadline_ms_;
}

bool CancelToken::wait_until(std::int64_t until_ms) const {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (cancelled_) return true;
    const auto left = until_ms - steady_ms();
    if (left <= 0) return false;
    cv_.wait_for(lock, std::chrono::milliseconds(left));
  }
}

// ---- noop / sleep / fail -------------------------------------------------------------------

namespace {

// noop, sleep:MIN-MAX, fail:P and their combinations.
class SimulatedHandler final : public Handler {
 public:
  SimulatedHandler(std::string spec, std::optional<std::pair<std::int64_t, std::int64_t>> sleep_ms,
                   double fail_probability, std::uint64_t seed)
      : spec_(std::move(spec)),
        sleep_ms_(sleep_ms),
        fail_probability_(fail_probability),
        rng_(seed != 0 ? seed : std::random_device{}()) {}

  Outcome handle(const TaskView& /*task*/, const CancelToken& cancel) override {
    std::int64_t sleep_for = 0;
    double draw = 1.0;
    {
      std::lock_guard lock(rng_mutex_);
      if (sleep_ms_) {
        sleep_for =
            std::uniform_int_distribution<std::int64_t>(sleep_ms_->first, sleep_ms_->second)(rng_);
      }
      if (fail_probability_ > 0.0) draw = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
    }
    if (sleep_for > 0) {
      const auto until = steady_ms() + sleep_for;
      const bool timed_out = cancel.deadline_ms() < until;
      if (cancel.wait_until(std::min(until, cancel.deadline_ms())) && !cancel.expired())
        return Outcome::failed("cancelled", true);
      if (timed_out || cancel.expired()) {
        return Outcome::failed("timed out after " + std::to_string(cancel.timeout_ms()) + " ms",
                               true);
      }
    }
    if (draw < fail_probability_)
      return Outcome::failed("simulated failure (" + fail_text() + ")", true);
    return Outcome::completed();
  }

  std::string describe() const override { return spec_; }

 private:
  std::string fail_text() const {
    // The spec's own spelling of P, e.g. "fail:0.1".
    const auto pos = spec_.find("fail:");
    if (pos == std::string::npos) return "fail";
    const auto end = spec_.find(',', pos);
    return spec_.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
  }

  std::string spec_;
  std::optional<std::pair<std::int64_t, std::int64_t>> sleep_ms_;
  double fail_probability_;
  std::mutex rng_mutex_;
  std::mt19937_64 rng_;
};

[[noreturn]] void bad_spec(std::string_view spec, std::string_view why) {
  throw std::invalid_argument("bad --handler '" + std::string(spec) + "': " + std::string(why));
}

std::int64_t parse_ms(std::string_view whole, std::string_view text) {
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < 0) {
    bad_spec(whole, "'" + std::string(text) + "' is not a number of milliseconds");
  }
  if (value > 24LL * 3600 * 1000) bad_spec(whole, "sleep longer than a day");
  return value;
}

double parse_probability(std::string_view whole, std::string_view text) {
  // std::from_chars for double is in libstdc++ 11+, but strtod is universally available.
  const std::string copy(text);
  char* end = nullptr;
  errno = 0;
  const double p = copy.empty() ? -1.0 : std::strtod(copy.c_str(), &end);
  if (copy.empty() || end != copy.c_str() + copy.size() || errno != 0 || !(p >= 0.0 && p <= 1.0)) {
    bad_spec(whole, "fail probability '" + copy + "' is not a number in [0, 1]");
  }
  return p;
}

}  // namespace

std::unique_ptr<Handler> make_handler(std::string_view spec, const HandlerOptions& options) {
  if (spec.starts_with("exec-persistent:")) {
    auto command = spec.substr(16);
    if (command.find_first_not_of(" \t") == std::string_view::npos) {
      bad_spec(spec, "empty command after 'exec-persistent:'");
    }
    return std::make_unique<PersistentExecHandler>(std::string(command), options);
  }
  if (spec.starts_with("exec:")) {
    auto command = spec.substr(5);
    if (command.find_first_not_of(" \t") == std::string_view::npos)
      bad_spec(spec, "empty command after 'exec:'");
    return std::make_unique<ExecHandler>(std::string(command), options);
  }
  if (spec.empty())
    bad_spec(spec,
             "empty spec (expected noop, sleep:MIN-MAX, fail:P, exec:COMMAND or "
             "exec-persistent:COMMAND)");

  std::optional<std::pair<std::int64_t, std::int64_t>> sleep_ms;
  std::optional<double> fail_probability;
  bool noop = false;
  std::size_t start = 0;
  for (;;) {
    const auto comma = spec.find(',', start);
    const auto part = spec.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (part.empty()) bad_spec(spec, "empty element");
    if (part == "noop") {
      if (noop) bad_spec(spec, "'noop' given twice");
      noop = true;
    } else if (part.starts_with("sleep:")) {
      if (sleep_ms) bad_spec(spec, "'sleep:' given twice");
      const auto range = part.substr(6);
      const auto dash = range.find('-');
      const auto lo = parse_ms(spec, range.substr(0, dash));
      const auto hi = dash == std::string_view::npos ? lo : parse_ms(spec, range.substr(dash + 1));
      if (hi < lo) bad_spec(spec, "sleep MIN is greater than MAX");
      sleep_ms = std::pair{lo, hi};
    } else if (part.starts_with("fail:")) {
      if (fail_probability) bad_spec(spec, "'fail:' given twice");
      fail_probability = parse_probability(spec, part.substr(5));
    } else if (part.starts_with("exec:") || part.starts_with("exec-persistent:")) {
      bad_spec(spec, "exec:COMMAND cannot be combined with other handlers");
    } else {
      bad_spec(spec, "unknown element '" + std::string(part) +
                         "' (expected noop, sleep:MIN-MAX, fail:P or exec:COMMAND)");
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return std::make_unique<SimulatedHandler>(std::string(spec), sleep_ms,
                                            fail_probability.value_or(0.0), options.seed);
}

}  // namespace topicflow
