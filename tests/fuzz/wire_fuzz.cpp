// libFuzzer target for wire::decode, the one function that reads bytes from the network.
//
// The contract under test (../../common/include/topicflow/wire.hpp): decode() never crashes,
// never reads out of bounds, never hits undefined behaviour, and rejects bad input only by
// throwing wire::DecodeError. Anything else (another exception type, an ASan/UBSan report, a
// trap) is a finding. A message that does decode must also survive encode() -> decode()
// unchanged, so the encoder and the decoder agree on every shape the decoder accepts.
//
// Build and run: cmake --workflow --preset fuzz (see tests/fuzz/CMakeLists.txt).

#include <topicflow/wire.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>

namespace {

// Tight limits reach the size checks with small inputs; the defaults are what production uses.
const topicflow::wire::Limits kTight{.max_job_bytes = 8,
                                     .max_key_bytes = 16,
                                     .max_payload_bytes = 32,
                                     .max_data_bytes = 32,
                                     .max_items = 4};

void check(std::span<const std::byte> bytes, const topicflow::wire::Limits& limits) {
  namespace wire = topicflow::wire;
  try {
    const wire::Message message = wire::decode(bytes, limits);
    const std::string again = wire::encode(message);
    if (wire::decode(again, limits) != message) {
      std::fprintf(stderr, "wire_fuzz: %s changed in an encode/decode round trip\n",
                   std::string(wire::type_name(message)).c_str());
      __builtin_trap();
    }
  } catch (const wire::DecodeError&) {
    // The one allowed way to reject input.
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  check(bytes, topicflow::wire::Limits{});
  check(bytes, kTight);
  return 0;
}
