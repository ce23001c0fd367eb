// Pins cli/output.cc's status lines (SweepLines, JobLines): columns stay aligned whatever the
// length of names and labels.
#include "cli/output.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "cli/client_commands.h"
#include "common/job_spec.h"

namespace {

using bitsweep::cli::JobLines;
using bitsweep::cli::SweepLines;

// Where `needle` starts in each line (npos when absent).
std::vector<size_t> Columns(const std::vector<std::string>& lines, const std::string& needle) {
  std::vector<size_t> at;
  for (const std::string& line : lines) at.push_back(line.find(needle));
  return at;
}

std::string SpecJson(const std::string& method, int wbits, const std::string& task) {
  bitsweep::JobSpec spec;
  spec.model = "/models/qwen3-0.6b";
  spec.quant.method = method;
  spec.quant.wbits = wbits;
  spec.quant.group_size = method == "fp" ? -1 : 128;
  spec.eval.task = task;
  auto normal = bitsweep::NormalizeJobSpec(spec);
  REQUIRE(normal.ok());
  return bitsweep::JobSpecToJson(*normal);
}

}  // namespace

TEST_CASE("status lists sweeps with the progress bars in one column however long the names",
          "[cli]") {
  bitsweep::v1::ListSweepsResponse sweeps;
  auto* a = sweeps.add_sweeps();
  a->set_id(7);
  a->set_name("demo");
  a->set_total(4);
  auto* b = sweeps.add_sweeps();
  b->set_id(1234);
  b->set_name("a-sweep-name-much-longer-than-twelve-characters");
  b->set_total(8);
  b->set_succeeded(8);
  const std::vector<std::string> lines = SweepLines(sweeps);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].rfind("sweep    7 demo ", 0) == 0);
  const std::vector<size_t> bars = Columns(lines, "[");
  CHECK(bars[0] != std::string::npos);
  CHECK(bars[0] == bars[1]);
  const std::vector<size_t> succeeded = Columns(lines, "succeeded");
  CHECK(succeeded[0] == succeeded[1]);
}

TEST_CASE(
    "status of a sweep keeps its job columns aligned with long labels and no trailing "
    "spaces",
    "[cli]") {
  bitsweep::v1::ListJobsResponse jobs;
  auto* a = jobs.add_jobs();
  a->set_id(3);
  a->set_state(bitsweep::v1::JOB_STATE_PENDING);
  a->set_attempt(0);
  a->set_max_attempts(3);
  a->set_spec_json(SpecJson("rtn", 4, "wikitext2"));
  a->set_phase("phase-a");
  auto* b = jobs.add_jobs();
  b->set_id(123456);
  b->set_state(bitsweep::v1::JOB_STATE_CANCEL_REQUESTED);
  b->set_attempt(1);
  b->set_max_attempts(3);
  b->set_spec_json(SpecJson("gptq", 3, "a/very/long/path/to/a/custom-task-file-name.jsonl"));
  b->set_phase("phase-b");
  const std::vector<std::string> lines = JobLines(jobs);
  REQUIRE(lines.size() == 2);
  INFO(lines[0] << "\n" << lines[1]);
  const std::vector<size_t> attempt = Columns(lines, "attempt");
  CHECK(attempt[0] == attempt[1]);
  CHECK(lines[0].find("rtn") == lines[1].find("gptq"));
  CHECK(lines[0].find("phase-a") == lines[1].find("phase-b"));
  for (const std::string& line : lines) {
    INFO(line);
    CHECK(line.back() != ' ');
  }
}

TEST_CASE("submit says how many jobs were new, reused from stored results, or skipped", "[cli]") {
  bitsweep::v1::SubmitSweepResponse r;
  r.mutable_sweep()->set_id(3);
  r.mutable_sweep()->set_name("demo");
  r.mutable_sweep()->set_total(12);
  r.set_new_jobs(8);
  r.set_reused_jobs(3);
  r.set_rerun_jobs(1);
  r.add_skipped()->set_description("billm w4");
  CHECK(bitsweep::cli::SubmitLine(r) ==
        "sweep 3 \"demo\": 12 jobs: 8 new, 3 reused from stored results, 1 run again, 1 skipped");
  r.set_rerun_jobs(0);
  r.set_new_jobs(7);
  r.set_shared_jobs(2);
  CHECK(bitsweep::cli::SubmitLine(r) ==
        "sweep 3 \"demo\": 12 jobs: 7 new, 3 reused from stored results, 2 shared with another "
        "sweep, 1 skipped");
  r.set_replayed(true);
  CHECK(bitsweep::cli::SubmitLine(r) == "sweep 3 \"demo\": 12 jobs (already submitted)");
}

TEST_CASE("A refused call for want of a token says which flag or variable gives it", "[cli]") {
  const bitsweep::Status refused =
      absl::UnauthenticatedError("missing 'authorization: Bearer <token>' metadata");
  const std::string none(bitsweep::cli::ExplainAuthError(refused, false).message());
  CHECK_THAT(none, Catch::Contains("none was given") && Catch::Contains("--token") &&
                       Catch::Contains("$BITSWEEP_CLIENT_TOKEN"));
  const std::string wrong(bitsweep::cli::ExplainAuthError(refused, true).message());
  CHECK_THAT(wrong, Catch::Contains("was refused") && Catch::Contains("--token"));
  const bitsweep::Status other = absl::UnavailableError("connection refused");
  CHECK(bitsweep::cli::ExplainAuthError(other, false) == other);
}
