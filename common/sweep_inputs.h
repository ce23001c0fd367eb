// What a sweep's jobs read before any of them can run: model folders (config.json, *.safetensors
// weights, tokenizer.json), .jsonl task files, calibration files, and the data of named tasks
// and calibration sources under the workers' data folder (a task's folder not empty; for the
// calibration sources the training file they read: c4's c4-train.*.json, wikitext2's
// wiki.train.raw). `bitsweep local` checks them before it
// starts anything and refuses with the whole list. Reads the file system only; thread-compatible.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "common/sweep.h"

namespace bitsweep {

struct InputCheckOptions {
  // The folder the workers read named tasks (wikitext2, piqa, ...) and calibration sources (c4,
  // wikitext2) from; "" reports every named one as having no data folder.
  std::string data_dir;
  // false: named tasks and sources are not checked (their data lives with the workers).
  bool check_named_data = true;
};

// OK when `dir` looks like a Hugging Face model folder: config.json, weights as *.safetensors
// (one file or shards), tokenizer.json. Otherwise INVALID_ARGUMENT that names the folder, what
// it lacks and what a model folder must hold (NOT_FOUND when it is not a folder at all).
Status CheckModelFolder(const std::string& dir);

// One line per problem, each path once, in job order ("model /m: no tokenizer.json"); empty when
// everything the jobs read is there. Relative paths are checked against the working directory.
std::vector<std::string> CheckSweepInputs(const ExpandedSweep& sweep,
                                          const InputCheckOptions& options);

}  // namespace bitsweep
