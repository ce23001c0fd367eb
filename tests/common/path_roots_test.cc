// common/path_roots.h: the paths a sweep names stay under the configured roots, symbolic links
// and ".." included, and a refusal says nothing about whether the path exists.
#include "common/path_roots.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "common/sweep.h"
#include "tests/testing/paths.h"

namespace bitsweep {
namespace {

namespace fs = std::filesystem;

struct Tree {
  std::string dir;
  PathRoots roots;
};

// <dir>/models/m (a model), <dir>/data/t.jsonl, <dir>/secret (outside both roots).
Tree MakeTree(const std::string& name) {
  Tree t;
  t.dir = testing::ScratchDir(name);
  fs::create_directories(t.dir + "/models/m");
  fs::create_directories(t.dir + "/data");
  std::ofstream(t.dir + "/data/t.jsonl") << "{}\n";
  std::ofstream(t.dir + "/secret") << "x\n";
  t.roots.model = {t.dir + "/models"};
  t.roots.data = {t.dir + "/data"};
  return t;
}

TEST_CASE("a path outside the roots is refused in the same words whether it exists or not") {
  const Tree t = MakeTree("path_roots_outside");
  CHECK(CheckUnderRoots("model", t.dir + "/models/m", t.roots.model, "--model-root").ok());
  CHECK(CheckUnderRoots("model", t.dir + "/models/not-yet", t.roots.model, "--model-root").ok());
  const Status exists = CheckUnderRoots("model", "/etc", t.roots.model, "--model-root");
  const Status missing = CheckUnderRoots("model", "/etc-nope", t.roots.model, "--model-root");
  CHECK(exists.code() == absl::StatusCode::kInvalidArgument);
  CHECK(exists.message() == "model: '/etc' is outside the --model-root folders this server allows");
  CHECK(missing.code() == exists.code());
  CHECK(missing.message() ==
        "model: '/etc-nope' is outside the --model-root folders this server allows");
  // A sibling whose name only starts like the root is outside it.
  CHECK_FALSE(CheckUnderRoots("model", t.dir + "/models-evil", t.roots.model, "--model-root").ok());
  // No roots: not confined.
  CHECK(CheckUnderRoots("model", "/etc", {}, "--model-root").ok());
}

TEST_CASE("symbolic links and '..' are resolved before the check: neither leads out of a root") {
  const Tree t = MakeTree("path_roots_links");
  fs::create_symlink(t.dir + "/secret", t.dir + "/data/link.jsonl");
  fs::create_directory_symlink("/etc", t.dir + "/models/etc");
  CHECK_FALSE(
      CheckUnderRoots("task", t.dir + "/data/link.jsonl", t.roots.data, "--data-root").ok());
  CHECK_FALSE(CheckUnderRoots("model", t.dir + "/models/etc", t.roots.model, "--model-root").ok());
  CHECK_FALSE(
      CheckUnderRoots("model", t.dir + "/models/etc/missing", t.roots.model, "--model-root").ok());
  CHECK_FALSE(
      CheckUnderRoots("model", t.dir + "/models/m/../../secret", t.roots.model, "--model-root")
          .ok());
  CHECK_FALSE(
      CheckUnderRoots("model", "../../../../../../etc", t.roots.model, "--model-root").ok());
  // A root that is itself a link is resolved too: paths through either spelling are inside.
  fs::create_directory_symlink(t.dir + "/models", t.dir + "/models-link");
  CHECK(
      CheckUnderRoots("model", t.dir + "/models/m", {t.dir + "/models-link"}, "--model-root").ok());
}

TEST_CASE(
    "a sweep's models, .jsonl tasks and calibration files are checked before expansion, "
    "built-in tasks and calibration sets name no path") {
  const Tree t = MakeTree("path_roots_sweep");
  auto yaml = [&](const std::string& model, const std::string& task, const std::string& calib) {
    return "name: s\nmodels: [" + model + "]\nmethods: [{method: gptq, wbits: [4]}]\ntasks: [" +
           task + "]\ncalibration: {source: " + calib + "}\n";
  };
  auto check = [&](const std::string& text) {
    auto spec = ParseSweepYaml(text, "s.yaml");
    REQUIRE(spec.ok());
    return CheckSweepPaths(*spec, t.roots);
  };
  CHECK(check(yaml(t.dir + "/models/m", "wikitext2", "c4")).ok());
  CHECK(check(yaml(t.dir + "/models/m", t.dir + "/data/t.jsonl", t.dir + "/data/c.json")).ok());
  CHECK(check(yaml("/etc", "wikitext2", "c4")).message() ==
        "models[0]: '/etc' is outside the --model-root folders this server allows");
  CHECK(check(yaml(t.dir + "/models/m", "/etc/x.jsonl", "c4")).message() ==
        "tasks[0]: '/etc/x.jsonl' is outside the --data-root folders this server allows");
  CHECK(check(yaml(t.dir + "/models/m", "wikitext2", "/etc/passwd")).message() ==
        "calibration.source: '/etc/passwd' is outside the --data-root folders this server "
        "allows");

  JobSpec job;
  job.model = t.dir + "/models/m";
  job.eval.task = t.dir + "/secret.jsonl";
  CHECK(CheckJobSpecPaths(job, t.roots).message() ==
        "task: '" + t.dir + "/secret.jsonl' is outside the --data-root folders this server allows");
  job.eval.task = "wikitext2";
  job.calibration = CalibrationConfig{};
  job.calibration->source = t.dir + "/models/m/../../secret";
  CHECK_FALSE(CheckJobSpecPaths(job, t.roots).ok());
  job.calibration->source = "c4";
  CHECK(CheckJobSpecPaths(job, t.roots).ok());
}

TEST_CASE("the roots a sweep names admit its own paths and nothing beside them") {
  const Tree t = MakeTree("path_roots_named");
  auto spec = ParseSweepYaml("name: s\nmodels: [" + t.dir +
                                 "/models/m]\nmethods: [{method: rtn, "
                                 "wbits: [4]}]\ntasks: [wikitext2, " +
                                 t.dir + "/data/t.jsonl]\n",
                             "s.yaml");
  REQUIRE(spec.ok());
  const PathRoots roots = RootsNamedBy(*spec);
  CHECK(CheckSweepPaths(*spec, roots).ok());
  CHECK_FALSE(CheckUnderRoots("model", t.dir + "/models", roots.model, "--model-root").ok());
  CHECK_FALSE(CheckUnderRoots("task", t.dir + "/secret", roots.data, "--data-root").ok());
  CHECK(RootFlags(roots) ==
        std::vector<std::string>{"--model-root", ResolvePath(t.dir + "/models/m"), "--data-root",
                                 ResolvePath(t.dir + "/data/t.jsonl")});
}

}  // namespace
}  // namespace bitsweep
