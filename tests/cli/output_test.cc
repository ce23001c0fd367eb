// Pins cli/output.cc's status lines (SweepLines, JobLines): columns stay aligned whatever the
// length of names and labels; `status -o json|wide` and `describe job`'s text.
#include "cli/output.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
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

TEST_CASE("a sweep with a run_tag is named with it in status and submit lines", "[cli]") {
  bitsweep::v1::ListSweepsResponse sweeps;
  auto* a = sweeps.add_sweeps();
  a->set_id(7);
  a->set_name("demo");
  auto* b = sweeps.add_sweeps();
  b->set_id(8);
  b->set_name("demo");
  b->set_run_tag("torch-2.6");
  const std::vector<std::string> lines = SweepLines(sweeps);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].rfind("sweep 7 demo ", 0) == 0);
  CHECK(lines[1].rfind("sweep 8 demo run=torch-2.6 [", 0) == 0);
  CHECK(Columns(lines, "[")[0] == Columns(lines, "[")[1]);
  bitsweep::v1::SubmitSweepResponse r;
  *r.mutable_sweep() = *b;
  r.set_replayed(true);
  CHECK(bitsweep::cli::SubmitLine(r) ==
        "sweep 8 \"demo run=torch-2.6\": 0 jobs (already submitted)");
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

namespace {

// A failed job that ran 90 s and a running one leased 30 s before `kNow`.
constexpr int64_t kNow = 1800000000;

bitsweep::v1::ListJobsResponse TwoJobs() {
  bitsweep::v1::ListJobsResponse jobs;
  auto* failed = jobs.add_jobs();
  failed->set_id(4);
  failed->set_job_key("key-4");
  failed->set_state(bitsweep::v1::JOB_STATE_FAILED);
  failed->set_attempt(3);
  failed->set_max_attempts(3);
  failed->set_worker("worker-a");
  failed->set_error("bad.jsonl: line 1 is not JSON");
  failed->set_spec_json(SpecJson("gptq", 3, "wikitext2"));
  failed->set_created_at(kNow - 200);
  failed->set_leased_at(kNow - 120);
  failed->set_finished_at(kNow - 30);
  auto* running = jobs.add_jobs();
  running->set_id(5);
  running->set_job_key("key-5");
  running->set_state(bitsweep::v1::JOB_STATE_LEASED);
  running->set_attempt(1);
  running->set_max_attempts(3);
  running->set_worker("a-worker-with-a-long-name");
  running->set_spec_json(SpecJson("rtn", 4, "wikitext2"));
  running->set_progress(0.25);
  running->set_phase("quantize layer 1/4");
  running->set_created_at(kNow - 200);
  running->set_leased_at(kNow - 30);
  return jobs;
}

}  // namespace

TEST_CASE("status -o json gives each job and sweep with stable field names and Unix times",
          "[cli]") {
  const nlohmann::json jobs = nlohmann::json::parse(bitsweep::cli::JobsJson(TwoJobs(), kNow));
  REQUIRE(jobs.size() == 2);
  const nlohmann::json& failed = jobs[0];
  CHECK(failed["id"] == 4);
  CHECK(failed["job_key"] == "key-4");
  CHECK(failed["state"] == "FAILED");
  CHECK(failed["attempt"] == 3);
  CHECK(failed["max_attempts"] == 3);
  CHECK(failed["worker"] == "worker-a");
  CHECK(failed["error"] == "bad.jsonl: line 1 is not JSON");
  CHECK(failed["quant"] == "gptq w3 g128");
  CHECK(failed["eval"] == "wikitext2");
  CHECK(failed["spec"]["quant"]["method"] == "gptq");
  CHECK(failed["created_at"] == kNow - 200);
  CHECK(failed["leased_at"] == kNow - 120);
  CHECK(failed["finished_at"] == kNow - 30);
  CHECK(failed["elapsed_seconds"] == 90.0);
  CHECK(failed["eta_seconds"].is_null());
  const nlohmann::json& running = jobs[1];
  CHECK(running["state"] == "LEASED");
  CHECK(running["finished_at"].is_null());
  CHECK(running["elapsed_seconds"] == 30.0);  // from leased_at: the coordinator sent none
  CHECK(running["progress"] == 0.25);
  CHECK(running["phase"] == "quantize layer 1/4");

  bitsweep::v1::ListSweepsResponse sweeps;
  auto* s = sweeps.add_sweeps();
  s->set_id(2);
  s->set_name("demo");
  s->set_created_at(kNow - 100);
  s->set_total(4);
  s->set_succeeded(1);
  s->set_leased(1);
  s->set_pending(1);
  s->set_skipped(1);  // by the sweep's early_abort rule: done, so it counts toward the estimate
  s->set_saved_worker_seconds(12.5);
  const nlohmann::json listed = nlohmann::json::parse(bitsweep::cli::SweepsJson(sweeps, kNow));
  REQUIRE(listed.size() == 1);
  CHECK(listed[0]["id"] == 2);
  CHECK(listed[0]["name"] == "demo");
  CHECK(listed[0]["running"] == 1);
  CHECK(listed[0]["pending"] == 1);
  CHECK(listed[0]["skipped"] == 1);
  CHECK(listed[0]["saved_worker_seconds"] == 12.5);
  CHECK(listed[0]["finished"] == false);
  CHECK(listed[0]["elapsed_seconds"] == 100.0);
  CHECK(listed[0]["eta_seconds"] == 100.0);  // 2 of 4 done in 100 s
}

TEST_CASE("status -o wide adds worker, attempts, elapsed and reason columns under a header",
          "[cli]") {
  const std::vector<std::string> lines = bitsweep::cli::JobLinesWide(TwoJobs(), kNow);
  REQUIRE(lines.size() == 3);
  INFO(lines[0] << "\n" << lines[1] << "\n" << lines[2]);
  CHECK(lines[0].rfind("ID  STATE", 0) == 0);
  for (const char* column : {"ATTEMPTS", "WORKER", "ELAPSED", "PROGRESS", "REASON"}) {
    CHECK(lines[0].find(column) != std::string::npos);
  }
  // Each column starts where its header does, whatever the width of the entries.
  CHECK(lines[1].find("worker-a") == lines[0].find("WORKER"));
  CHECK(lines[2].find("a-worker-with-a-long-name") == lines[0].find("WORKER"));
  CHECK(lines[1].find("3/3") == lines[0].find("ATTEMPTS"));
  CHECK(lines[1].find("1m30s") == lines[0].find("ELAPSED"));
  CHECK(lines[2].find("30s") == lines[0].find("ELAPSED"));
  CHECK(lines[2].find("25%") == lines[0].find("PROGRESS"));
  CHECK(lines[1].find("bad.jsonl: line 1 is not JSON") == lines[0].find("REASON"));
  for (const std::string& line : lines) CHECK(line.back() != ' ');

  bitsweep::v1::ListSweepsResponse sweeps;
  auto* s = sweeps.add_sweeps();
  s->set_id(2);
  s->set_name("demo");
  s->set_created_at(kNow - 100);
  s->set_total(4);
  const std::vector<std::string> sweep_lines = bitsweep::cli::SweepLinesWide(sweeps, kNow);
  REQUIRE(sweep_lines.size() == 2);
  CHECK(sweep_lines[0].rfind("ID  NAME", 0) == 0);
  CHECK(sweep_lines[0].find("SKIPPED") != std::string::npos);
  CHECK(sweep_lines[1].find("1m40s") == sweep_lines[0].find("ELAPSED"));
}

TEST_CASE("describe job prints the job's key, state, attempts, worker, times, error, metrics "
          "and events",
          "[cli]") {
  bitsweep::v1::JobDescription d;
  *d.mutable_job() = TwoJobs().jobs(0);
  d.set_sweep_id(7);
  d.set_artifact_key("artifact-4");
  d.mutable_requirements()->set_devices(1);
  d.set_tp(1);
  auto* e = d.add_events();
  e->set_at(kNow - 200);
  e->set_event("SUBMIT");
  e->set_to_state("PENDING");
  e = d.add_events();
  e->set_at(kNow - 30);
  e->set_event("FAIL");
  e->set_from_state("LEASED");
  e->set_to_state("FAILED");
  e->set_epoch(3);
  e->set_worker("worker-a");
  e->set_reason("bad.jsonl: line 1 is not JSON");
  auto* m = d.add_metrics();
  m->set_name("ppl");
  m->set_value(6.061);
  m->set_n(8);
  const std::string text = bitsweep::cli::DescribeJobText(d, kNow);
  INFO(text);
  CHECK(text.rfind("job 4\n", 0) == 0);
  for (const std::string& expected :
       {std::string("key:"), std::string("key-4"), std::string("sweep:"),
        std::string("model:"), std::string("/models/qwen3-0.6b"), std::string("quantization:"),
        std::string("gptq w3 g128"), std::string("calibration:"), std::string("task:"),
        std::string("wikitext2 (seqlen 2048"), std::string("state:"), std::string("FAILED"),
        std::string("attempts:"), std::string("3/3"), std::string("worker:"),
        std::string("worker-a"), std::string("finished:"), bitsweep::cli::UnixTime(kNow - 30),
        std::string("elapsed:"), std::string("1m30s"),
        std::string("error:"), std::string("bad.jsonl: line 1 is not JSON"),
        std::string("artifact:"), std::string("artifact-4"), std::string("ppl"),
        std::string("6.061"), std::string("SUBMIT"), std::string("LEASED -> FAILED"),
        std::string("epoch 3"), std::string("provenance:")}) {
    CHECK(text.find(expected) != std::string::npos);
  }
  CHECK(bitsweep::cli::UnixTime(0) == "-");
  CHECK(bitsweep::cli::UnixTime(1800000000) == "2027-01-15 08:00:00 UTC");
  CHECK(text.find("quantization loss per layer") == std::string::npos);  // none recorded

  // The artifact's per-layer losses from the provenance, one row per layer.
  d.set_provenance_json(
      R"({"layer_losses": [{"layer": 0, "loss": 1.25, "linears": 7, "notes": 0,)"
      R"( "min_calib_tokens": 4096}, {"layer": 1, "loss": 0.5, "linears": 7, "notes": 2,)"
      R"( "min_calib_tokens": 12}]})");
  const std::string with_losses = bitsweep::cli::DescribeJobText(d, kNow);
  INFO(with_losses);
  const size_t table = with_losses.find("quantization loss per layer:\n");
  REQUIRE(table != std::string::npos);
  CHECK(with_losses.find("LAYER", table) != std::string::npos);
  CHECK(with_losses.find("1.25", table) != std::string::npos);
  CHECK(with_losses.find("4096", table) != std::string::npos);
  CHECK(with_losses.find("\n  1      0.5   7        2      12\n", table) != std::string::npos);
}
