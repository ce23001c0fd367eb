// ResultsTable: stored result rows pivoted like the study's tables. A row is one quantized model
// (the model and its whole recipe: method, bits, group, options and calibration; the FP baseline
// first), a column one task's headline metric (perplexity: ppl; every other task: acc) under one
// set of evaluation settings (window length, windows or example limit, shots, batch, dtype, data
// file). Results that differ in any of these never share a cell: labels name what tells
// otherwise-equal rows or columns apart (common/labels.h), a column computed on a subset of the
// data says so ("windows=8 (subset)"), and a baseline cell is compared only with the cells of its
// own column. One pure function used by every consumer: `bitsweep results` (text, csv, markdown,
// html) and the coordinator's dashboard API, so the CLI and the browser show the same table.
// Plain value types and pure functions; no I/O.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace bitsweep {

// One stored metric of one job, as QueryResults / JobStore::Results return it.
struct ResultInput {
  int64_t job_id = 0;
  std::string spec_json;  // the job spec (JobSpecToJson)
  std::string metric;     // "ppl", "acc", "acc_norm", ...
  double value = 0;
  double stderr_value = 0;
  int64_t n = 0;
  // The stored provenance (its "eval" object names the data file read and how much of it was
  // scored); "" or "{}" when unknown.
  std::string provenance_json;
  // A job an early_abort rule skipped (common/early_abort.h): its reason; value is NaN and
  // metric the task's headline (SkippedResultInput makes one). "" for a result.
  std::string skipped_reason = "";  // (an initializer: brace lists may leave it out)
  // A job that FAILED without a result (FailedResultInput makes one): its error. Only the paper
  // report (`bitsweep report`) passes these; "" for a result.
  std::string failed_reason = "";
};

// The input of a SKIPPED job, placed in its task's headline column ("ppl" or "acc") with a NaN
// value and `reason`.
ResultInput SkippedResultInput(int64_t job_id, const std::string& spec_json,
                               const std::string& reason);
// The same for a FAILED job: its error in failed_reason instead.
ResultInput FailedResultInput(int64_t job_id, const std::string& spec_json,
                              const std::string& error);

struct ResultsColumn {
  // Unique: "wikitext2 ppl", "piqa acc" (custom .jsonl tasks by file stem), plus the settings
  // that tell it from other columns of that name ("wikitext2 ppl seqlen=256") and, when computed
  // on a subset, the limit and " (subset)".
  std::string name;
  std::string task;              // the task as written in the spec
  std::string metric;            // "ppl" or "acc"
  bool lower_is_better = false;  // true for perplexity
  std::string key;               // canonical: task, metric and every evaluation setting
  std::vector<std::pair<std::string, std::string>> settings;  // label fields, display order
  bool subset = false;      // some result was computed on part of the task's data (limit)
  bool has_stderr = false;  // an accuracy column, or a perplexity one where some cell has stderr
  bool has_delta = false;   // some quantized cell has its model's baseline in this column
};

struct ResultsCell {
  double value = 0;
  double stderr_value = 0;
  int64_t n = 0;
  int64_t job_id = 0;
  // value minus the model's FP baseline in the same column (so under the same evaluation
  // settings); only on quantized rows whose baseline has a finite value there.
  bool has_delta = false;
  double delta = 0;
  // The job was skipped by an early_abort rule: the reason ("" otherwise); value is NaN.
  std::string skipped = "";
  // The job failed without a result (FailedResultInput): its error ("" otherwise); value is NaN.
  std::string failed = "";
};

struct ResultsRow {
  std::string model;       // the model folder, as in the spec
  // The sweep's `name:` for the folder, else ModelDisplayName; the folder itself when two
  // models' names are equal.
  std::string model_name;
  // The jobs' run tag (common/job_spec.h JobSpec::run_tag), "" = none. Rows are grouped by
  // model and run tag: each group has its own FP baseline, and deltas compare within a group.
  std::string run_tag;
  std::string method;      // "fp" for the baseline
  int wbits = 16, abits = 0, group = -1;
  // "FP (baseline)" or DescribeQuant ("gptq w4 g128"), plus the calibration settings that tell
  // it from the model's other rows of that series ("gptq w3 g64 nsamples=4").
  std::string label;
  std::string series;  // the label without the bit-width ("gptq g128"): one plot line each
  bool baseline = false;
  std::string key;  // the artifact key: model and whole recipe
  std::vector<std::pair<std::string, std::string>> recipe;  // options, then calibration
  std::map<std::string, ResultsCell> cells;  // by column name; missing = no result yet
  // Mixed recipes (common/mixed_precision.h), in the JSON only where `overrides` is set: the
  // canonical overrides ("" when uniform), the average weight bits a worker recorded in the
  // provenance (0: none yet) and, for a sensitivity job (SensitivityUnit), its unit.
  std::string overrides;
  double avg_wbits = 0;
  std::string sensitivity_unit;
};

struct ResultsTable {
  std::vector<ResultsColumn> columns;  // in order of first appearance
  // By model and run tag, baseline first, then method; within a method by bits descending
  // (wbits, then abits, no activation quantization counting as 16), then group.
  std::vector<ResultsRow> rows;
  int64_t unreadable = 0;  // inputs whose spec_json did not parse (left out)
};

// Whether PivotResults uses `metric`: each task's headline, "ppl" (perplexity) or "acc" (every
// other task). Readers that page through results keep only these rows for the table.
bool IsHeadlineMetric(const std::string& metric);

// Whether two rows belong to one model group: the same model folder and run tag.
bool SameModelGroup(const ResultsRow& a, const ResultsRow& b);
// What the "model" column shows: model_name, followed by " run=TAG" for a tagged row.
std::string ModelColumnText(const ResultsRow& row);

// The name a table shows for a model folder: its basename ("/models/Qwen3-8B" -> "Qwen3-8B"), or
// the repository's name for a Hugging Face cache snapshot
// (".../models--Qwen--Qwen3-0.6B/snapshots/<hash>" -> "Qwen3-0.6B").
std::string ModelDisplayName(const std::string& model_path);

// Keeps each task's headline metric (ppl for perplexity, acc otherwise) and pivots. Of two
// results for one cell (the same job key stored twice), the later job's is kept. A non-finite
// value without provenance (a diverged job's row, common/diverged.h) joins the column of its
// metric and evaluation settings whatever data file the other results of that column name.
// `model_names` (folder -> name, the sweeps' `name:` keys, common/sweep.h ModelNames) names
// those models in ResultsRow::model_name instead of ModelDisplayName.
ResultsTable PivotResults(const std::vector<ResultInput>& inputs,
                          const std::map<std::string, std::string>& model_names = {});

// The table as JSON, the format the dashboard and the HTML report read:
//   {"columns": [{"name", "task", "metric", "lower_is_better", "key", "subset",
//                 "settings": {"seqlen": "256", "windows": "8", ...}}],
//    "rows": [{"model", "model_name", "method", "wbits", "abits", "group", "label", "series",
//              "baseline", "key", "recipe": {"act_order": "true", "nsamples": "128", ...},
//              "run_tag" (only when the row has one),
//              "cells": {"<column name>": {"value", "stderr", "n", "job_id", "delta"}}}]}
// ("delta": null where the cell has none; the columns also carry "has_stderr", "has_delta"; a
// skipped cell has "value": null and "skipped": its reason, a failed one "failed": its error).
std::string ResultsTableToJson(const ResultsTable& table);

// A cell as the text table prints it: ppl with 3 decimals, accuracies with 4, or with 2 in percent
// (`percent`: 0.7123 -> "71.23"); a diverged model's cell (a non-finite value,
// common/diverged.h) as "inf", "-inf" or "nan". (JSON has no such numbers: ResultsTableToJson
// writes null there.) Stderr prints the same way; a delta with its sign ("+1.234", "-0.52").
std::string FormatResultValue(const ResultsColumn& column, double value, bool percent = false);
std::string FormatResultDelta(const ResultsColumn& column, double delta, bool percent = false);

// The text renderings of the table (`bitsweep results --format`; json and the HTML report are
// ResultsTableToJson's and dashboard/'s):
//   kText      columns padded to their widest cell (numbers right-aligned), two spaces apart, a
//              rule under the header, no trailing spaces
//   kCsv       comma-separated (RFC 4180 quoting where a field needs it); the model's method,
//              wbits, abits (16: none) and group ("channel": per channel) in columns of their own;
//              a missing cell is empty
//   kMarkdown  a GitHub table: "| a | b |", padded like kText, numbers right-aligned
//   kLatex     a booktabs tabular (\toprule, \midrule between models, \bottomrule); the model
//              named on its first row; stderr as a subscript "$_{\pm 0.45}$"; no delta column
enum class ResultsFormat { kText, kCsv, kMarkdown, kLatex };

struct ResultsRenderOptions {
  bool percent = false;  // accuracies (value, stderr, delta) in percent, headers marked "(%)"
};

// The header row is "model" (ModelDisplayName), "quantization" (kCsv: "model", "method",
// "wbits", "abits", "group", "quantization"), then, only when some row is a mixed recipe
// (overrides), "avg wbits" (kCsv "avg_wbits": its avg_wbits, "-" while unknown; a uniform row's
// wbits, FP's 16; two decimals), and one column each, followed, in kText, kCsv and
// kMarkdown, by its "stderr" column where the column has_stderr and its "vs FP" column (the
// delta to the model's baseline) where it has_delta (kCsv names them "<column> stderr",
// "<column> vs FP"). A missing cell is "-" (kCsv: empty; kLatex: "--"), a skipped one "skipped"
// (kText and kMarkdown end with a note giving each skipped cell's reason). When a column is a subset
// (ResultsColumn::subset), kText, kMarkdown and kLatex end with a note saying what that means
// (kLatex as a % comment; kCsv stays a plain table). A table without rows renders as "no results
// yet\n" in every format.
std::string RenderResultsTable(const ResultsTable& table, ResultsFormat format,
                               const ResultsRenderOptions& options = {});

}  // namespace bitsweep
