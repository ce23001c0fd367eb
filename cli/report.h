// `bitsweep report`: the paper's report of one sweep (or two side by side with --compare) as the
// JSON that dashboard/src/report.js renders into one self-contained HTML file
// (dashboard::RenderPaperReport). Everything here comes from what the coordinator stored: the
// results table pivoted as `bitsweep results` pivots it, the jobs that failed, were skipped or
// canceled with their reasons, and a summary of the jobs' provenance. Pure functions.
#pragma once

#include <string>

#include "bitsweep/v1/coordinator.pb.h"

namespace bitsweep::cli {

// What the report reads of one sweep, every page of each listing.
struct ReportSweep {
  v1::Sweep sweep;
  v1::QueryResultsResponse results;
  v1::ListJobsResponse jobs;  // every job of the sweep (the failed ones give their errors)
};

// The report's data:
//   {"title", "paper_tasks": [{"task", "title"}] (the study's column order),
//    "sweeps": [{"id", "name", "created_at", "total", "succeeded", "failed", "skipped",
//                "canceled", "pending" (pending or running),
//                "table": ResultsTableToJson (FAILED jobs without a result as "failed" cells),
//                "problems": [{"job_id", "state", "model", "quant", "task", "reason"}],
//                "provenance": {"jobs", "code_versions", "checkpoints", "data_files",
//                               "calibrations", "seeds", "workers", "devices"}}]}
// A sensitivity sweep's per-unit bars come from the table's rows (`sensitivity_unit`, each
// cell's delta to FP), as in the dashboard: the table is the only copy of the numbers.
// Each provenance list holds distinct values with the number of jobs that recorded each
// ("jobs") and the first of their ids ("job_ids"). `compare` (may be null) adds a second sweep.
std::string ReportJson(const ReportSweep& sweep, const ReportSweep* compare);

// The report's title: "bitsweep report: sweep 3 (name)", "... vs sweep 4 (name)".
std::string ReportTitle(const ReportSweep& sweep, const ReportSweep* compare);

}  // namespace bitsweep::cli
