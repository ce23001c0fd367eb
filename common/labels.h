// Labels that never merge different settings. Short labels ("gptq w3 g64", "wikitext2") hide
// the settings that usually do not vary (calibration, evaluation window, shots, ...). When two
// things that share a short label differ in such a setting, their labels name it
// ("gptq w3 g64 nsamples=4" vs "gptq w3 g64 nsamples=32"), so that neither a table nor a job
// list shows two different settings under one name. Used by the results table (rows and
// columns) and by `bitsweep status`. Pure functions over values; thread-compatible.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/job_spec.h"

namespace bitsweep {

// A setting as a label shows it: "nsamples" -> "4" prints as "nsamples=4".
using LabelField = std::pair<std::string, std::string>;

struct LabelParts {
  std::string group;               // items with the same group are compared with each other
  std::string base;                // the short label
  std::vector<LabelField> fields;  // every setting not in `base`, in display order
  std::vector<std::string> always;  // names of fields shown even when the group agrees on them
};

// base + " name=value" for every field whose value differs among the items of the same group
// (a field an item lacks counts as the value "-"), and for the fields named in `always`.
// Two items of one group with equal base and different fields get different labels.
std::vector<std::string> DistinctLabels(const std::vector<LabelParts>& items);

// A quantization label without its weight bit-width: one plot line per series
// ("gptq w4 g64" -> "gptq g64"; a weight-and-activation label "m w8a8" -> "m a8").
std::string QuantSeries(const std::string& label, int wbits);

// The calibration of a normalised spec as label fields (calib, nsamples, calib_seqlen, seed,
// calib_dtype); empty when the method uses no calibration. DescribeQuant already shows the
// method's non-default options.
std::vector<LabelField> CalibrationFields(const JobSpec& spec);

// The evaluation settings of a normalised EvalConfig that change a number, as label fields:
// seqlen (perplexity), windows (perplexity's limit) or limit (examples per task or subject),
// shots, batch, dtype. A limit of 0 (all) shows as "all".
std::vector<LabelField> EvalFields(const EvalConfig& eval);

// The name of a perplexity task's limit field ("windows") or any other task's ("limit").
std::string LimitFieldName(const EvalConfig& eval);

// One label per spec: {quantization label, evaluation label}, each telling apart the specs of
// the list that share a model and a short label (used for job lists such as `bitsweep status`).
struct JobLabel {
  std::string quant;  // DescribeQuant, plus the calibration settings that differ
  std::string eval;   // the task, plus the evaluation settings that differ; windows/limit when set
};
std::vector<JobLabel> LabelJobs(const std::vector<JobSpec>& specs);

}  // namespace bitsweep
