#pragma once
#include <string_view>

namespace topicflow {
// Strict UTF-8 validation (no overlongs, no surrogates, nothing above U+10FFFF).
[[nodiscard]] bool valid_utf8(std::string_view text) noexcept;
}  // namespace topicflow
