// What the `bitsweep` service commands print: one-line summaries of sweeps and jobs, the results
// in every --format, and errors. Pure functions over the v1 messages, except WriteOutput and
// Fail, which write to a file or the standard streams.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bitsweep/v1/coordinator.pb.h"
#include "common/status.h"

namespace bitsweep::cli {

// Prints "bitsweep: error: <message>" to stderr; the exit code: 2 for INVALID_ARGUMENT, else 1.
int Fail(const Status& status);

// "sweep 3 demo [#####.....] 4/12  succeeded 4  failed 0  canceled 0  running 2  pending 6".
std::string SweepLine(const v1::Sweep& sweep);
// One line per job: "job 12    LEASED  attempt 1/3  rtn w4 g128  wikitext2  quantize layer
// 3/28", the state named as in common/job_state.h, the quantization and evaluation labelled by
// common/labels.h's LabelJobs (naming the settings that tell apart jobs whose short labels are
// equal); "?" for a spec that does not parse.
std::vector<std::string> JobLines(const v1::ListJobsResponse& jobs);

// The results in `format` (table, csv, markdown, json, html): table, csv and markdown are
// common/results_table.h's renderings of the pivot; json is every stored row with its spec and
// provenance; html is the dashboard's self-contained report, titled after `sweep_id` (0: every
// sweep).
std::string RenderResults(const v1::QueryResultsResponse& results, const std::string& format,
                          int64_t sweep_id);

// `text` to standard output (`path` "" or "-") or to the file `path`, saying so on stderr;
// UNAVAILABLE naming the file when it cannot be written.
Status WriteOutput(const std::string& path, const std::string& text);

}  // namespace bitsweep::cli
