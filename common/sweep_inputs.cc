#include "common/sweep_inputs.h"

#include <filesystem>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/catalog.h"

namespace bitsweep {
namespace {

namespace fs = std::filesystem;

bool HasFileEnding(const fs::path& dir, const std::string& ending) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() >= ending.size() &&
        name.compare(name.size() - ending.size(), ending.size(), ending) == 0) {
      return true;
    }
  }
  return false;
}

// What a model folder lacks of config.json, weights and tokenizer.json. REQUIRES: a folder.
std::vector<std::string> MissingModelFiles(const std::string& model) {
  std::error_code ec;
  std::vector<std::string> missing;
  if (!fs::is_regular_file(fs::path(model) / "config.json", ec)) missing.push_back("config.json");
  if (!HasFileEnding(model, ".safetensors")) missing.push_back("weights (*.safetensors)");
  if (!fs::is_regular_file(fs::path(model) / "tokenizer.json", ec)) {
    missing.push_back("tokenizer.json");
  }
  return missing;
}

void CheckModel(const std::string& model, std::vector<std::string>* problems) {
  std::error_code ec;
  if (!fs::is_directory(model, ec)) {
    problems->push_back(absl::StrCat("model ", model, ": no such folder"));
    return;
  }
  for (const std::string& m : MissingModelFiles(model)) {
    problems->push_back(absl::StrCat("model ", model, ": no ", m));
  }
}

// The folder under the data folder that holds a named task's or source's files: the first
// component of the catalog's data_files ("wikitext2/wiki.test.raw" -> "wikitext2").
std::string DataFolder(const std::string& name) {
  auto task = LookupTask(name);
  const std::string files = task.ok() ? (*task)->data_files : name;
  return files.substr(0, files.find('/'));
}

void CheckNamedData(const std::string& what, const std::string& name,
                    const InputCheckOptions& options, std::vector<std::string>* problems) {
  if (!options.check_named_data) return;
  if (options.data_dir.empty()) {
    problems->push_back(absl::StrCat(what, " ", name,
                                     ": no data folder (pass --data-dir or set "
                                     "$BITSWEEP_DATA_DIR)"));
    return;
  }
  const fs::path folder = fs::path(options.data_dir) / DataFolder(name);
  std::error_code ec;
  if (!fs::is_directory(folder, ec) || fs::is_empty(folder, ec)) {
    problems->push_back(absl::StrCat(what, " ", name, ": no data in ", folder.string()));
  }
}

// A named calibration source reads one file of its folder, not the evaluation's: `c4` the first
// C4 training file (<data>/c4/c4-train.*.json[l], quant/calibration_data.cc), `wikitext2` the
// training split (<data>/wikitext2/wiki.train.raw). A folder holding only the validation or test
// files passes the task check but would fail every calibrating job.
void CheckCalibrationData(const std::string& source, const InputCheckOptions& options,
                          std::vector<std::string>* problems) {
  const size_t before = problems->size();
  CheckNamedData("calibration source", source, options, problems);
  if (problems->size() != before || !options.check_named_data) return;
  const fs::path folder = fs::path(options.data_dir) / source;
  std::error_code ec;
  if (source == "c4") {
    for (const auto& e : fs::directory_iterator(folder, ec)) {
      if (e.path().filename().string().rfind("c4-train", 0) == 0) return;
    }
    problems->push_back(absl::StrCat("calibration source c4: no C4 training file (c4-train.*.json) in ",
                                     folder.string()));
  } else if (source == "wikitext2") {
    if (fs::is_regular_file(folder / "wiki.train.raw", ec)) return;
    problems->push_back(absl::StrCat("calibration source wikitext2: no ",
                                     (folder / "wiki.train.raw").string()));
  }
}

void CheckFile(const std::string& what, const std::string& path,
               std::vector<std::string>* problems) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) problems->push_back(absl::StrCat(what, " ", path, ": no such file"));
}

}  // namespace

Status CheckModelFolder(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat(dir, ": no such folder"));
  }
  const std::vector<std::string> missing = MissingModelFiles(dir);
  if (missing.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      dir, " is not a Hugging Face model folder: it has no ", absl::StrJoin(missing, ", no "),
      " (a model folder holds config.json, the weights as *.safetensors, one file or shards "
      "with model.safetensors.index.json, and tokenizer.json: what `huggingface-cli download "
      "Qwen/Qwen3-0.6B` writes into its snapshot folder)"));
}

std::vector<std::string> CheckSweepInputs(const ExpandedSweep& sweep,
                                          const InputCheckOptions& options) {
  std::vector<std::string> problems;
  std::set<std::string> seen;  // "kind:name", each checked once
  auto first = [&seen](const std::string& kind, const std::string& name) {
    return seen.insert(absl::StrCat(kind, ":", name)).second;
  };
  for (const JobSpec& job : sweep.jobs) {
    if (first("model", job.model)) CheckModel(job.model, &problems);
    if (first("task", job.eval.task)) {
      if (IsTaskPath(job.eval.task)) {
        CheckFile("task", job.eval.task, &problems);
      } else {
        CheckNamedData("task", job.eval.task, options, &problems);
      }
    }
    if (job.calibration && first("calibration", job.calibration->source)) {
      const std::string& source = job.calibration->source;
      if (source == "c4" || source == "wikitext2") {
        CheckCalibrationData(source, options, &problems);
      } else {
        CheckFile("calibration source", source, &problems);
      }
    }
  }
  return problems;
}

}  // namespace bitsweep
