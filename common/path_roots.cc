#include "common/path_roots.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/catalog.h"

namespace bitsweep {
namespace {

namespace fs = std::filesystem;

// A calibration source that names a file (not a built-in set).
bool IsCalibrationFile(const std::string& source) {
  return !source.empty() && source != "c4" && source != "wikitext2";
}

// The sweep's calibration sources: its own and each method's.
std::vector<std::string> CalibrationFiles(const SweepSpec& spec) {
  std::vector<std::string> files;
  if (spec.calibration.source && IsCalibrationFile(*spec.calibration.source)) {
    files.push_back(*spec.calibration.source);
  }
  for (const SweepMethod& m : spec.methods) {
    if (m.calibration.source && IsCalibrationFile(*m.calibration.source)) {
      files.push_back(*m.calibration.source);
    }
  }
  return files;
}

}  // namespace

std::string ResolvePath(const std::string& path) {
  if (path.empty()) return path;
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec);
  if (ec) absolute = fs::path(path);
  // weakly_canonical follows the links of the existing prefix and normalises the rest.
  fs::path resolved = fs::weakly_canonical(absolute, ec);
  if (ec) resolved = absolute.lexically_normal();
  return resolved.string();
}

Status CheckUnderRoots(const std::string& field, const std::string& path,
                       const std::vector<std::string>& roots, const std::string& flag) {
  if (roots.empty()) return absl::OkStatus();
  const fs::path resolved(ResolvePath(path));
  for (const std::string& root : roots) {
    const fs::path rel = resolved.lexically_relative(fs::path(ResolvePath(root)));
    if (!rel.empty() && *rel.begin() != "..") return absl::OkStatus();
  }
  // The same words whether `path` exists or not.
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": '", path, "' is outside the ", flag, " folders this server allows"));
}

Status CheckJobSpecPaths(const JobSpec& spec, const PathRoots& roots) {
  RETURN_IF_ERROR(CheckUnderRoots("model", spec.model, roots.model, "--model-root"));
  if (IsTaskPath(spec.eval.task)) {
    RETURN_IF_ERROR(CheckUnderRoots("task", spec.eval.task, roots.data, "--data-root"));
  }
  if (spec.calibration && IsCalibrationFile(spec.calibration->source)) {
    RETURN_IF_ERROR(
        CheckUnderRoots("calibration.source", spec.calibration->source, roots.data, "--data-root"));
  }
  return absl::OkStatus();
}

Status CheckSweepPaths(const SweepSpec& spec, const PathRoots& roots) {
  for (std::size_t i = 0; i < spec.models.size(); ++i) {
    RETURN_IF_ERROR(CheckUnderRoots(absl::StrCat("models[", i, "]"), spec.models[i].path,
                                    roots.model, "--model-root"));
  }
  for (std::size_t i = 0; i < spec.tasks.size(); ++i) {
    if (!IsTaskPath(spec.tasks[i].task)) continue;
    RETURN_IF_ERROR(CheckUnderRoots(absl::StrCat("tasks[", i, "]"), spec.tasks[i].task, roots.data,
                                    "--data-root"));
  }
  for (const std::string& file : CalibrationFiles(spec)) {
    RETURN_IF_ERROR(CheckUnderRoots("calibration.source", file, roots.data, "--data-root"));
  }
  return absl::OkStatus();
}

PathRoots RootsNamedBy(const SweepSpec& spec) {
  PathRoots roots;
  for (const SweepModel& m : spec.models) roots.model.push_back(ResolvePath(m.path));
  for (const SweepTask& t : spec.tasks) {
    if (IsTaskPath(t.task)) roots.data.push_back(ResolvePath(t.task));
  }
  for (const std::string& file : CalibrationFiles(spec)) roots.data.push_back(ResolvePath(file));
  return roots;
}

std::vector<std::string> RootFlags(const PathRoots& roots) {
  std::vector<std::string> flags;
  for (const std::string& m : roots.model) {
    flags.push_back("--model-root");
    flags.push_back(m);
  }
  for (const std::string& d : roots.data) {
    flags.push_back("--data-root");
    flags.push_back(d);
  }
  return flags;
}

}  // namespace bitsweep
