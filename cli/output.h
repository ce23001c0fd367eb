// What the `bitsweep` service commands print: one-line summaries of sweeps and jobs, the results
// in every --format, and errors. Pure functions over the v1 messages, except WriteOutput and
// Fail, which write to a file or the standard streams.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bitsweep/v1/coordinator.pb.h"
#include "common/results_table.h"
#include "common/status.h"

namespace bitsweep::cli {

// The exit codes of `bitsweep` (README "Exit codes", `bitsweep --help`).
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;       // could not run: unreachable, refused, I/O
inline constexpr int kExitUsage = 2;       // bad input: flags, sweep file, missing inputs
inline constexpr int kExitJobsFailed = 3;  // ran, but some job failed or was canceled
inline constexpr int kExitNoResults = 4;   // nothing stored: `results`, `report`, `logs`
inline constexpr const char* kExitCodesHelp =
    "Exit codes: 0 success; 1 could not run (coordinator unreachable, refused, I/O error); 2 bad "
    "input (flags, sweep file, missing models or data, a --max-memory too small); 3 the sweep ran "
    "but some job failed or was canceled (watch, submit --wait, local); 4 no results (results, "
    "report) or no stored output (logs); 128+N stopped by signal N (local).";

// Prints "bitsweep: error: <message>" to stderr; the exit code: kExitUsage for
// INVALID_ARGUMENT and RESOURCE_EXHAUSTED (what was asked for does not fit: a --max-memory too
// small for one layer), else kExitError.
int Fail(const Status& status);

// The sweep's name as the CLI shows it: "demo", or "demo run=v2" for a sweep with a run_tag.
std::string SweepName(const v1::Sweep& sweep);
// "sweep 3 demo [#####.....] 4/12  succeeded 4  failed 0  canceled 0  running 2  pending 6", the
// name (SweepName) padded to `name_width` (a longer one is written whole).
std::string SweepLine(const v1::Sweep& sweep, int name_width = 12);
// SweepLine of each sweep, ids and names padded to the longest of the list, so the columns
// after them line up however long a name is.
std::vector<std::string> SweepLines(const v1::ListSweepsResponse& sweeps);
// What a submission did: "sweep 3 \"demo\": 12 jobs: 8 new, 3 reused from stored results, 1 run
// again, 0 skipped" (run again: failed or canceled before; "shared with another sweep" is added
// when some are still pending or running for one); "... (already submitted)" for a replay.
std::string SubmitLine(const v1::SubmitSweepResponse& submitted);
// For an unfinished sweep, "  elapsed 2m10s  eta 4m20s": the time since it was created at
// `now_unix_seconds`, and what is left at the rate its jobs finished so far ("eta ?" before the
// first); "" for a finished sweep.
std::string SweepTiming(const v1::Sweep& sweep, int64_t now_unix_seconds);
// "42s", "3m05s", "1h02m".
std::string ShortDuration(double seconds);
// One line per job: "job 12    LEASED  attempt 1/3  rtn w4 g128  wikitext2  quantize layer
// 3/28  40%  elapsed 12s  eta 18s" (progress, elapsed and estimate while it runs), the state named
// as in common/job_state.h, the quantization and evaluation labelled by common/labels.h's LabelJobs
// (naming the settings that tell apart jobs whose short labels are equal); "?" for a spec that does
// not parse. Each column is as wide as its longest entry, so the columns line up with long labels;
// no line ends in spaces.
std::vector<std::string> JobLines(const v1::ListJobsResponse& jobs);

// `bitsweep status -o json`: one JSON array (pretty, newline-terminated), one object per sweep
// or job with stable field names. A sweep: id, name, priority, created_at (Unix seconds), total,
// pending, running, succeeded, failed, canceled, skipped (by the sweep's early_abort rule),
// saved_worker_seconds (their estimated saving), finished, elapsed_seconds and eta_seconds (null
// for a finished sweep, eta also before the first job finished). A job: id, job_key, state (as
// common/job_state.h names it), attempt, max_attempts, priority, worker ("" when none), error ("",
// none), progress, phase, quant and eval (JobLines' labels), spec (the job spec, an object),
// created_at, leased_at, finished_at (Unix seconds, null when not yet), elapsed_seconds
// (JobElapsedSeconds; null when unknown) and eta_seconds (null when none). `now_unix_seconds`
// dates what is still running.
std::string SweepsJson(const v1::ListSweepsResponse& sweeps, int64_t now_unix_seconds);
std::string JobsJson(const v1::ListJobsResponse& jobs, int64_t now_unix_seconds);
// `bitsweep status -o wide`: a header line, then one line per sweep (ID NAME PRIORITY TOTAL
// SUCCEEDED FAILED CANCELED RUNNING PENDING CREATED ELAPSED ETA) or job (ID STATE ATTEMPTS QUANT
// EVAL WORKER ELAPSED PROGRESS PHASE REASON: the error of a failed job, or why it was retried),
// every column as wide as its longest entry, "-" for an empty cell, no line ending in spaces.
std::vector<std::string> SweepLinesWide(const v1::ListSweepsResponse& sweeps,
                                        int64_t now_unix_seconds);
std::vector<std::string> JobLinesWide(const v1::ListJobsResponse& jobs, int64_t now_unix_seconds);
// How long a job's latest attempt ran: while it runs, the coordinator's elapsed_seconds (else the
// time since leased_at); once finished, finished_at - leased_at; -1 when unknown (never leased).
double JobElapsedSeconds(const v1::Job& job, int64_t now_unix_seconds);
// "2026-12-07 17:51:36 UTC"; "-" for 0.
std::string UnixTime(int64_t unix_seconds);

// `bitsweep describe job N`: everything the coordinator knows about one job, one "name: value"
// line each (job key, sweep, model, quantization, calibration, task and evaluation settings,
// state, attempts, worker, created/leased/finished times, elapsed, progress, error, artifact,
// resources), then its metrics, its events (time, event, from -> to, worker, reason), its spec
// and provenance as indented JSON.
std::string DescribeJobText(const v1::JobDescription& job, int64_t now_unix_seconds);

// The results in `format` (table, csv, markdown, latex, json, html): table, csv, markdown and
// latex are common/results_table.h's renderings of the pivot, accuracies in percent when
// `percent`; json is every stored row with its spec and provenance (raw values); html is the
// dashboard's self-contained report (accuracies always in percent), titled after `sweep_id` (0:
// every sweep).
std::string RenderResults(const v1::QueryResultsResponse& results, const std::string& format,
                          int64_t sweep_id, bool percent = false);

// Every job's headline metrics and skipped cells of `results` (all pages) pivoted
// (common/results_table.h), with `extra` inputs (FailedResultInput rows, for the report) first.
ResultsTable PivotQueryResults(const v1::QueryResultsResponse& results,
                               const std::vector<ResultInput>& extra = {});

// `text` to standard output (`path` "" or "-") or to the file `path`, saying so on stderr;
// UNAVAILABLE naming the file when it cannot be written.
Status WriteOutput(const std::string& path, const std::string& text);

}  // namespace bitsweep::cli
