#pragma once
// The HTTP API's JSON: parsing a submission body (the whole body validated before anything is
// registered) and the JSON shapes of jobs and topics (docs/api.md). Pure functions, no I/O; the
// parser is fuzzed (tests/fuzz/api_json_fuzz.cpp): no input may crash it or run unbounded.

#include <topicflow/store.hpp>
#include <topicflow/wire.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace topicflow::api {

inline constexpr std::size_t kMaxTopicsPerRequest = 100000;
inline constexpr std::size_t kMaxJsonDepth = 64;

struct BadRequest {
  int status = 400;    // 400, or 413 (too many topics)
  std::string reason;  // one line, e.g. "topics[3]: key must be a non-empty string"
};

// The body of POST /v1/jobs/{job}/topics: a JSON array of {"key", "payload" | "payload_base64"}.
// A non-string JSON payload is kept as its JSON text (as in a .jsonl file).
[[nodiscard]] std::variant<std::vector<wire::SubmitItem>, BadRequest> parse_submission(
    std::string_view body, const wire::Limits& limits = {});

// A job name from a URL: non-empty, valid UTF-8, no control characters, within the wire limit.
// Returns the reason it is not valid, or nothing.
[[nodiscard]] std::optional<std::string> check_job_name(std::string_view job,
                                                        const wire::Limits& limits = {});
[[nodiscard]] std::optional<std::string> check_key(std::string_view key,
                                                   const wire::Limits& limits = {});

// JOB of docs/api.md.
[[nodiscard]] nlohmann::json job_json(const store::JobCounts& job);
// Sets `field` (a string, valid UTF-8) or `field`_base64 (any other bytes).
void put_bytes(nlohmann::json& out, std::string_view field, std::string_view bytes);

[[nodiscard]] std::string base64_encode(std::string_view bytes);
[[nodiscard]] std::optional<std::string> base64_decode(std::string_view text);

// Percent-decoding of one URL path segment or query value ('+' stays '+' in paths).
[[nodiscard]] std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space);

// {"error": reason} as text.
[[nodiscard]] std::string error_body(std::string_view reason);
// JSON text of `j` (invalid UTF-8 replaced, never thrown).
[[nodiscard]] std::string dump(const nlohmann::json& j);

}  // namespace topicflow::api
