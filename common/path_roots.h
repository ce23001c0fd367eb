// PathRoots: the folders the paths of a sweep may lead into. A sweep (and so every job of it)
// names model folders, custom task files (.jsonl) and calibration files; the coordinator reads
// a model's config.json when it expands a sweep and the workers open all of them. With roots
// configured (`--model-root`, `--data-root`, repeatable), each such path is resolved (made
// absolute against the working directory, every symbolic link of the part that exists
// followed, "." and ".." removed) and must lie under one of them: else INVALID_ARGUMENT with
// the same message whether the path exists or not, so a refusal reveals nothing about the
// filesystem. Torch-free and network-free (the coordinator and the workers both use it).
#pragma once

#include <string>
#include <vector>

#include "common/job_spec.h"
#include "common/status.h"
#include "common/sweep.h"

namespace bitsweep {

struct PathRoots {
  std::vector<std::string> model;  // model folders; empty: model paths are not confined
  std::vector<std::string> data;   // task and calibration files; empty: not confined
};

// `path` resolved as described above ("" stays "").
std::string ResolvePath(const std::string& path);

// OK when `roots` is empty or `path` resolves to one of them or into one; else
// INVALID_ARGUMENT "<field>: '<path>' is outside the <flag> folders this server allows".
Status CheckUnderRoots(const std::string& field, const std::string& path,
                       const std::vector<std::string>& roots, const std::string& flag);

// Every path of a job: its model (model roots), a .jsonl task and a calibration file (data
// roots). The built-in tasks and calibration sources ("c4", "wikitext2") name no path.
Status CheckJobSpecPaths(const JobSpec& spec, const PathRoots& roots);

// Every path a sweep names, checked before it is expanded (ExpandSweep reads config.json).
Status CheckSweepPaths(const SweepSpec& spec, const PathRoots& roots);

// The roots that admit exactly what `spec` names: each model folder, task file and calibration
// file (resolved): what `bitsweep local` gives its coordinator and workers.
PathRoots RootsNamedBy(const SweepSpec& spec);

// The command-line flags for `roots`: {"--model-root", m, ..., "--data-root", d, ...}.
std::vector<std::string> RootFlags(const PathRoots& roots);

}  // namespace bitsweep
