// ResultsTable: stored result rows pivoted like the study's tables. Rows are model x method x
// bits x group (every quantization config of a model, its FP baseline first), columns are tasks
// with their headline metric (perplexity: ppl; every other task: acc). One pure function used by
// every consumer: `bitsweep results` (text, csv, markdown, html) and the coordinator's dashboard
// API, so the CLI and the browser show the same table. Plain value types; no I/O.
#pragma once

#include <cstdint>
#include <map>
#include <string>
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
};

struct ResultsColumn {
  std::string name;              // "wikitext2 ppl", "piqa acc" (custom .jsonl tasks by file stem)
  std::string task;              // the task as written in the spec
  std::string metric;            // "ppl" or "acc"
  bool lower_is_better = false;  // true for perplexity
};

struct ResultsCell {
  double value = 0;
  double stderr_value = 0;
  int64_t n = 0;
  int64_t job_id = 0;
};

struct ResultsRow {
  std::string model;
  std::string method;  // "fp" for the baseline
  int wbits = 16, abits = 0, group = -1;
  std::string label;   // "FP (baseline)" or DescribeQuant ("gptq w4 g128")
  std::string series;  // the label without the bit-width ("gptq g128"): one plot line each
  bool baseline = false;
  std::map<std::string, ResultsCell> cells;  // by column name; missing = no result yet
};

struct ResultsTable {
  std::vector<ResultsColumn> columns;  // in order of first appearance
  std::vector<ResultsRow> rows;        // by model, baseline first, method, wbits, abits, group
  int64_t unreadable = 0;              // inputs whose spec_json did not parse (left out)
};

// Keeps each task's headline metric (ppl for perplexity, acc otherwise) and pivots.
ResultsTable PivotResults(const std::vector<ResultInput>& inputs);

// The table as JSON, the format the dashboard and the HTML report read:
//   {"columns": [{"name", "task", "metric", "lower_is_better"}],
//    "rows": [{"model", "method", "wbits", "abits", "group", "label", "series", "baseline",
//              "cells": {"<column>": {"value", "stderr", "n", "job_id"}}}]}
std::string ResultsTableToJson(const ResultsTable& table);

// A cell as the text table prints it: ppl with 3 decimals, accuracies with 4.
std::string FormatResultValue(const ResultsColumn& column, double value);

}  // namespace bitsweep
