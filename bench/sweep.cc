// Expands a 10,000-job sweep (40 models x 25 quant configs x 10 tasks) and prints how long the
// coordinator's share of SubmitSweep takes before the database: YAML parse, expansion with
// normalisation and de-duplication, and per job the JobKey, its SHA-256 and the JSON spec that
// would be inserted. The target for the whole submit, DB insert included, is well under 5 s.
#include "common/sweep.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "common/catalog.h"
#include "common/job_spec.h"

namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

std::string SweepYaml(int models) {
  std::string y = "name: bench\nbaseline: true\nmodels:\n";
  for (int i = 0; i < models; ++i) y += "  - /models/bench-" + std::to_string(i) + "\n";
  // Every method of the catalog: weight-only ones at each width they take, in groups of 128
  // where groups apply; W+A ones at their widest weights and default activation bits.
  y += "methods:\n";
  for (const bitsweep::MethodInfo* m : bitsweep::QuantizationMethods()) {
    y += std::string("  - {method: ") + m->name;
    if (m->takes_abits) {
      y += ", wbits: " + std::to_string(m->max_wbits) +
           ", abits: " + std::to_string(m->default_abits);
    } else if (m->min_wbits != m->max_wbits) {
      y += ", wbits: [";
      for (int w = m->min_wbits; w <= m->max_wbits; ++w) {
        y += (w == m->min_wbits ? "" : ", ") + std::to_string(w);
      }
      y += "]";
    }
    if (m->group_size_applies) y += ", group: 128";
    y += "}\n";
  }
  y += R"(tasks: [wikitext2, c4, piqa, arc_easy, arc_challenge, hellaswag, winogrande, boolq, mmlu,
        data/heldout.jsonl]
eval: {seqlen: 2048, batch_size: 8, dtype: bf16}
)";
  return y;
}

}  // namespace

int main() {
  const std::string yaml = SweepYaml(40);
  double best_parse = 1e9, best_expand = 1e9, best_keys = 1e9;
  size_t jobs = 0, bytes = 0;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    auto spec = bitsweep::ParseSweepYaml(yaml, "bench.yaml");
    if (!spec.ok()) {
      std::fprintf(stderr, "%s\n", spec.status().ToString().c_str());
      return 1;
    }
    best_parse = std::min(best_parse, Seconds(t0));
    t0 = std::chrono::steady_clock::now();
    auto expanded = bitsweep::ExpandSweep(*spec);
    if (!expanded.ok()) {
      std::fprintf(stderr, "%s\n", expanded.status().ToString().c_str());
      return 1;
    }
    best_expand = std::min(best_expand, Seconds(t0));
    t0 = std::chrono::steady_clock::now();
    bytes = 0;
    for (const bitsweep::JobSpec& j : expanded->jobs) {
      bytes += bitsweep::Sha256Hex(j.JobKey()).size() + j.ArtifactKey().size() +
               bitsweep::JobSpecToJson(j).size();
    }
    best_keys = std::min(best_keys, Seconds(t0));
    jobs = expanded->jobs.size();
  }
  std::printf("sweep of %zu jobs (best of 5 runs)\n", jobs);
  std::printf("  parse YAML                         %8.2f ms\n", best_parse * 1e3);
  std::printf("  expand + normalise + de-duplicate  %8.2f ms\n", best_expand * 1e3);
  std::printf("  keys, SHA-256 and JSON per job     %8.2f ms (%zu bytes)\n", best_keys * 1e3,
              bytes);
  std::printf(
      "  total                              %8.2f ms (target: well under 5000 ms with "
      "the DB insert)\n",
      (best_parse + best_expand + best_keys) * 1e3);
  return 0;
}
