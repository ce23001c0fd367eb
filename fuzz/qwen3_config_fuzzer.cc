// libFuzzer harness: a config.json through ParseQwen3Config. A config that parses and validates
// must survive its own round trip (ToJson, then parse again) unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "model/qwen3_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = bitsweep::model::ParseQwen3Config(text, "fuzz/config.json");
  if (!config.ok() || !config->Validate().ok()) return 0;
  const std::string json = config->ToJson();
  auto again = bitsweep::model::ParseQwen3Config(json, "fuzz/config.json (round trip)");
  if (!again.ok() || !again->Validate().ok() || again->ToJson() != json) std::abort();
  return 0;
}
