#include "api_json.hpp"

#include <topicflow/utf8.hpp>

#include <array>

namespace topicflow::api {

using nlohmann::json;

namespace {

// The deepest nesting of arrays and objects in `text` (strings skipped), counted without
// parsing: nlohmann's parser recurses, so a body of a million '[' must be refused before it.
std::size_t nesting_depth(std::string_view text) {
  std::size_t depth = 0;
  std::size_t deepest = 0;
  bool in_string = false;
  bool escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

std::string at(std::size_t index) { return "topics[" + std::to_string(index) + "]"; }

}  // namespace

std::optional<std::string> check_job_name(std::string_view job, const wire::Limits& limits) {
  if (job.empty()) return "the job name is empty";
  if (job.size() > limits.max_job_bytes) {
    return "the job name is " + std::to_string(job.size()) + " bytes, limit " +
           std::to_string(limits.max_job_bytes);
  }
  if (!valid_utf8(job)) return "the job name is not valid UTF-8";
  for (const char c : job) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return "the job name contains a control character";
    }
  }
  return std::nullopt;
}

std::optional<std::string> check_key(std::string_view key, const wire::Limits& limits) {
  if (key.empty()) return "key must be a non-empty string";
  if (key.size() > limits.max_key_bytes) {
    return "key is " + std::to_string(key.size()) + " bytes, limit " +
           std::to_string(limits.max_key_bytes);
  }
  if (!valid_utf8(key)) return "key is not valid UTF-8";
  return std::nullopt;
}

std::variant<std::vector<wire::SubmitItem>, BadRequest> parse_submission(
    std::string_view body, const wire::Limits& limits) {
  if (nesting_depth(body) > kMaxJsonDepth) {
    return BadRequest{400,
                      "the body nests deeper than " + std::to_string(kMaxJsonDepth) + " levels"};
  }
  const auto doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return BadRequest{400, "the body is not valid JSON"};
  if (!doc.is_array()) {
    return BadRequest{400, "the body must be a JSON array of {\"key\", \"payload\"} objects"};
  }
  if (doc.size() > kMaxTopicsPerRequest) {
    return BadRequest{413, "the body has " + std::to_string(doc.size()) + " topics, limit " +
                               std::to_string(kMaxTopicsPerRequest) + " per request"};
  }
  std::vector<wire::SubmitItem> items;
  items.reserve(doc.size());
  for (std::size_t i = 0; i < doc.size(); ++i) {
    const auto& element = doc[i];
    if (!element.is_object()) return BadRequest{400, at(i) + ": must be an object"};
    wire::SubmitItem item;
    bool has_payload = false;
    for (const auto& [name, value] : element.items()) {
      if (name == "key") {
        if (!value.is_string()) return BadRequest{400, at(i) + ": key must be a non-empty string"};
        item.key = value.get<std::string>();
      } else if (name == "payload") {
        if (has_payload) {
          return BadRequest{400, at(i) + ": give payload or payload_base64, not both"};
        }
        item.payload = value.is_string() ? value.get<std::string>() : dump(value);
        has_payload = true;
      } else if (name == "payload_base64") {
        if (has_payload) {
          return BadRequest{400, at(i) + ": give payload or payload_base64, not both"};
        }
        if (!value.is_string()) {
          return BadRequest{400, at(i) + ": payload_base64 must be a base64 string"};
        }
        auto bytes = base64_decode(value.get<std::string>());
        if (!bytes) return BadRequest{400, at(i) + ": payload_base64 is not valid base64"};
        item.payload = std::move(*bytes);
        has_payload = true;
      } else {
        return BadRequest{400, at(i) + ": unknown field " + dump(json(name.substr(0, 64))) +
                                   " (expected key, payload or payload_base64)"};
      }
    }
    if (!element.contains("key")) return BadRequest{400, at(i) + ": key is missing"};
    if (auto why = check_key(item.key, limits)) return BadRequest{400, at(i) + ": " + *why};
    if (item.payload.size() > limits.max_payload_bytes) {
      return BadRequest{400, at(i) + ": payload is " + std::to_string(item.payload.size()) +
                                 " bytes, limit " + std::to_string(limits.max_payload_bytes)};
    }
    items.push_back(std::move(item));
  }
  return items;
}

json job_json(const store::JobCounts& job) {
  json j{{"job", job.job}};
  for (const auto status : store::kStatuses) {
    j[std::string(store::to_string(status))] = job.count(status);
  }
  j["total"] = job.total();
  j["paused"] = job.paused;
  return j;
}

void put_bytes(json& out, std::string_view field, std::string_view bytes) {
  if (valid_utf8(bytes)) {
    out[std::string(field)] = std::string(bytes);
  } else {
    out[std::string(field) + "_base64"] = base64_encode(bytes);
  }
}

namespace {
constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int sextet(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}
}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const auto n = (static_cast<unsigned>(static_cast<unsigned char>(bytes[i])) << 16U) |
                   (static_cast<unsigned>(static_cast<unsigned char>(bytes[i + 1])) << 8U) |
                   static_cast<unsigned>(static_cast<unsigned char>(bytes[i + 2]));
    out += kAlphabet[(n >> 18U) & 63U];
    out += kAlphabet[(n >> 12U) & 63U];
    out += kAlphabet[(n >> 6U) & 63U];
    out += kAlphabet[n & 63U];
  }
  if (i < bytes.size()) {
    auto n = static_cast<unsigned>(static_cast<unsigned char>(bytes[i])) << 16U;
    const bool two = i + 1 < bytes.size();
    if (two) n |= static_cast<unsigned>(static_cast<unsigned char>(bytes[i + 1])) << 8U;
    out += kAlphabet[(n >> 18U) & 63U];
    out += kAlphabet[(n >> 12U) & 63U];
    out += two ? kAlphabet[(n >> 6U) & 63U] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size() / 4 * 3);
  unsigned buffer = 0;
  int bits = 0;
  std::size_t padding = 0;
  for (const char c : text) {
    if (c == '=') {
      ++padding;
      continue;
    }
    if (padding > 0) return std::nullopt;  // data after padding
    const int v = sextet(c);
    if (v < 0) return std::nullopt;
    buffer = (buffer << 6U) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> static_cast<unsigned>(bits)) & 0xFFU);
    }
  }
  if (padding > 2 || bits >= 6) return std::nullopt;
  return out;
}

std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      const int hi = hex(text[i + 1]);
      const int lo = hex(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string error_body(std::string_view reason) {
  return dump(json{{"error", std::string(reason)}});
}

}  // namespace topicflow::api
