// wordstats-worker: a topicflow worker whose handler runs in-process. For every topic it counts
// the words and characters of the payload and returns them with the payload upper-cased, as one
// line of JSON: {"words":7,"characters":47,"upper":"A PRACTICAL GUIDE TO ..."}.
//
// Everything else (endpoints, --concurrency, heartbeats, retries, shutdown, --metrics-port) is
// the stock worker's, from topicflow::run_worker(); --max-words is this worker's own flag.
#include <topicflow/run_worker.hpp>

#include <cctype>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>

namespace {

// JSON string escaping for the result (the payload may contain quotes, backslashes, controls).
std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\u00";
      out += kHex[u >> 4U];
      out += kHex[u & 0xFU];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// Stateless apart from a setting fixed at start-up, so calls from --concurrency threads at once
// are safe.
class WordStats final : public topicflow::Handler {
 public:
  explicit WordStats(std::int64_t max_words) : max_words_(max_words) {}

  topicflow::Outcome handle(const topicflow::TaskView& task,
                            const topicflow::CancelToken& /*cancel*/) override {
    std::int64_t words = 0;
    bool in_word = false;
    std::string upper;
    upper.reserve(task.payload.size());
    for (const char c : task.payload) {
      const auto u = static_cast<unsigned char>(c);
      const bool space = std::isspace(u) != 0;
      if (!space && !in_word) ++words;
      in_word = !space;
      upper += static_cast<char>(std::toupper(u));  // ASCII only; other bytes pass through
    }
    if (words == 0) {
      // Permanent: another attempt cannot make an empty topic longer.
      return topicflow::Outcome::failed("no words in the payload", /*retryable=*/false);
    }
    if (max_words_ > 0 && words > max_words_) {
      return topicflow::Outcome::failed(
          std::to_string(words) + " words, more than --max-words " + std::to_string(max_words_),
          false);
    }
    std::ostringstream json;
    json << R"({"words":)" << words << R"(,"characters":)" << task.payload.size() << R"(,"upper":)"
         << json_string(upper) << "}";
    return topicflow::Outcome::completed(json.str());
  }

  std::string describe() const override {
    return "wordstats (max words " + std::to_string(max_words_) + ")";
  }

 private:
  std::int64_t max_words_;
};

}  // namespace

int main(int argc, char** argv) {
  std::int64_t max_words = 0;
  topicflow::RunWorkerOptions options;
  options.program = "wordstats-worker";
  options.description = "wordstats-worker: counts the words of every topic (a topicflow worker)";
  options.add_options = [&](CLI::App& app) {
    app.add_option("--max-words", max_words, "fail topics with more words than this (0: no limit)")
        ->envname("WORDSTATS_MAX_WORDS")
        ->check(CLI::NonNegativeNumber);
  };
  return topicflow::run_worker(
      argc, argv,
      [&](const topicflow::WorkerConfig&) { return std::make_unique<WordStats>(max_words); },
      options);
}
