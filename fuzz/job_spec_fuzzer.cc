// libFuzzer harness: a job spec's JSON (what the coordinator stores and a worker leases) through
// JobSpecFromJson. An accepted spec is normalised, so serialising and parsing it again must give
// the same spec: the same keys and the same JSON.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/job_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  auto spec = bitsweep::JobSpecFromJson(json);
  if (!spec.ok()) return 0;
  const std::string text = bitsweep::JobSpecToJson(*spec);
  auto back = bitsweep::JobSpecFromJson(text);
  if (!back.ok() || bitsweep::JobSpecToJson(*back) != text || back->JobKey() != spec->JobKey() ||
      back->ArtifactKey() != spec->ArtifactKey()) {
    std::abort();
  }
  return 0;
}
