// libFuzzer target for the HTTP API's body parser and URL decoders (sink/src/api_json.hpp):
// everything of a request that reaches the sink's code before any check of who sent it.
//
// The contract under test: parse_submission, percent_decode and base64_decode never crash,
// never throw, never read out of bounds and never hit undefined behaviour, whatever the bytes.
// What they accept must also make sense:
//   - an accepted submission has at most kMaxTopicsPerRequest items, each with a key that
//     check_key accepts and a payload within the limit, and survives a round trip: written
//     back as a body (payload, or payload_base64 for bytes that are not UTF-8) it parses to
//     the same items;
//   - a refused one is a 400 or a 413 with a reason that is not empty;
//   - base64_decode(base64_encode(x)) == x for any x, and what base64_decode accepts
//     re-encodes to something it decodes to the same bytes;
//   - percent_decode of "%XX" for every byte of x gives x back, and text without '%' (and,
//     for paths, without '+') is left as it is.
// Anything else (an exception, an ASan/UBSan report, a trap) is a finding.
//
// Build and run: cmake --workflow --preset fuzz (see tests/fuzz/CMakeLists.txt).

#include "api_json.hpp"

#include <topicflow/utf8.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace {

namespace api = topicflow::api;
namespace wire = topicflow::wire;

[[noreturn]] void finding(const char* what, std::string_view input) {
  std::fprintf(stderr, "api_json_fuzz: %s (input of %zu bytes)\n", what, input.size());
  __builtin_trap();
}

// Small limits reach the size checks with small inputs; the defaults are what the sink uses.
const wire::Limits kTight{.max_job_bytes = 8,
                          .max_key_bytes = 16,
                          .max_payload_bytes = 32,
                          .max_data_bytes = 32,
                          .max_items = 4};

// The items written back as a submission body, as a client would send them.
std::string as_body(const std::vector<wire::SubmitItem>& items) {
  nlohmann::json body = nlohmann::json::array();
  for (const auto& item : items) {
    nlohmann::json element{{"key", item.key}};
    api::put_bytes(element, "payload", item.payload);
    body.push_back(std::move(element));
  }
  return api::dump(body);
}

void check_submission(std::string_view body, const wire::Limits& limits) {
  auto parsed = api::parse_submission(body, limits);
  if (const auto* bad = std::get_if<api::BadRequest>(&parsed)) {
    if (bad->status != 400 && bad->status != 413) finding("a refusal that is not 400/413", body);
    if (bad->reason.empty()) finding("a refusal without a reason", body);
    return;
  }
  const auto& items = std::get<std::vector<wire::SubmitItem>>(parsed);
  if (items.size() > api::kMaxTopicsPerRequest) finding("more topics than the limit", body);
  for (const auto& item : items) {
    if (api::check_key(item.key, limits)) finding("an accepted key that check_key refuses", body);
    if (item.payload.size() > limits.max_payload_bytes) finding("a payload over the limit", body);
  }
  const std::string again = as_body(items);
  auto reparsed = api::parse_submission(again, limits);
  const auto* same = std::get_if<std::vector<wire::SubmitItem>>(&reparsed);
  if (same == nullptr) finding("accepted items written back are refused", body);
  if (*same != items) finding("accepted items changed in a round trip", body);
}

void check_base64(std::string_view bytes) {
  const auto encoded = api::base64_encode(bytes);
  const auto decoded = api::base64_decode(encoded);
  if (!decoded || *decoded != bytes) finding("base64_decode(base64_encode(x)) != x", bytes);
  if (const auto accepted = api::base64_decode(bytes)) {
    const auto back = api::base64_decode(api::base64_encode(*accepted));
    if (!back || *back != *accepted) finding("accepted base64 does not re-encode", bytes);
  }
}

void check_percent(std::string_view bytes) {
  static constexpr std::string_view kHex = "0123456789ABCDEF";
  std::string encoded;
  encoded.reserve(bytes.size() * 3);
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    encoded += '%';
    encoded += kHex[b >> 4U];
    encoded += kHex[b & 15U];
  }
  for (const bool plus_is_space : {false, true}) {
    const auto decoded = api::percent_decode(encoded, plus_is_space);
    if (!decoded || *decoded != bytes) finding("percent_decode(%XX...) != x", bytes);
    const auto plain = api::percent_decode(bytes, plus_is_space);
    const bool untouched = bytes.find('%') == std::string_view::npos &&
                           (!plus_is_space || bytes.find('+') == std::string_view::npos);
    if (untouched && (!plain || *plain != bytes)) finding("text without '%' changed", bytes);
    if (plain && plain->size() > bytes.size()) finding("percent_decode grew its input", bytes);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  check_submission(bytes, wire::Limits{});
  check_submission(bytes, kTight);
  check_base64(bytes);
  check_percent(bytes);
  (void)api::check_job_name(bytes);
  (void)api::check_key(bytes);
  return 0;
}
