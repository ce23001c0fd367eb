// libFuzzer harness: a sweep YAML through ParseSweepYaml and, when it parses, SweepGridSize and
// ExpandSweep (with a small job limit, so a valid but huge grid is refused, as the coordinator
// refuses it). Every expanded job spec must survive the JSON round trip the coordinator and the
// workers put it through, keeping its key.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/job_spec.h"
#include "common/sweep.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  auto spec = bitsweep::ParseSweepYaml(yaml, "fuzz.yaml");
  if (!spec.ok()) return 0;
  (void)bitsweep::SweepGridSize(*spec);
  bitsweep::ExpandOptions options;
  options.model_root = "/nonexistent/bitsweep-fuzz";  // relative models: no config.json read
  options.max_jobs = 512;
  auto expanded = bitsweep::ExpandSweep(*spec, options);
  if (!expanded.ok()) return 0;
  for (const bitsweep::JobSpec& job : expanded->jobs) {
    auto back = bitsweep::JobSpecFromJson(bitsweep::JobSpecToJson(job));
    if (!back.ok() || back->JobKey() != job.JobKey()) std::abort();
  }
  return 0;
}
