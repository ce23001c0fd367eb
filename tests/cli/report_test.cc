// Pins cli/report.cc: the data `bitsweep report` hands to report.js. Failed jobs without a result
// sit in their cells with their error, every skipped, failed or canceled job is listed with its
// reason, the provenance summary counts each distinct value, and a second sweep comes second.
#include "cli/report.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "common/job_spec.h"

namespace {

using nlohmann::json;
namespace pb = bitsweep::v1;

std::string Spec(const std::string& method, int wbits, const std::string& task) {
  bitsweep::JobSpec spec;
  spec.model = "/models/Qwen3-0.6B";
  spec.quant.method = method;
  spec.quant.wbits = method == "fp" ? 16 : wbits;
  spec.eval.task = task;
  auto normal = bitsweep::NormalizeJobSpec(spec);
  REQUIRE(normal.ok());
  return bitsweep::JobSpecToJson(*normal);
}

void AddResult(pb::QueryResultsResponse* results, int64_t id, const std::string& spec,
               const std::string& metric, double value, const std::string& provenance) {
  auto* job = results->add_jobs();
  job->set_job_id(id);
  job->set_spec_json(spec);
  job->set_provenance_json(provenance);
  auto* m = job->add_metrics();
  m->set_name(metric);
  m->set_value(value);
  m->set_n(10);
}

void AddJob(pb::ListJobsResponse* jobs, int64_t id, const std::string& spec, pb::JobState state,
            const std::string& error) {
  auto* job = jobs->add_jobs();
  job->set_id(id);
  job->set_spec_json(spec);
  job->set_state(state);
  job->set_error(error);
}

bitsweep::cli::ReportSweep Sweep() {
  bitsweep::cli::ReportSweep r;
  r.sweep.set_id(7);
  r.sweep.set_name("paper");
  r.sweep.set_total(5);
  const std::string prov =
      R"({"code_version": "v1", "checkpoint_digest": "d", "eval": {"source": "piqa/valid.jsonl"},)"
      R"( "data_files": [{"path": "wikitext2/wiki.test.raw", "sha256": "abc"}]})";
  const std::string fp_w = Spec("fp", 16, "wikitext2"), fp_p = Spec("fp", 16, "piqa");
  const std::string q_w = Spec("rtn", 4, "wikitext2"), q_p = Spec("rtn", 4, "piqa");
  const std::string q2_p = Spec("rtn", 2, "piqa");
  AddResult(&r.results, 1, fp_w, "ppl", 10.5, prov);
  AddResult(&r.results, 2, fp_p, "acc", 0.75, prov);
  AddResult(&r.results, 3, q_w, "ppl", 11.25, R"({"code_version": "v2"})");
  auto* skipped = r.results.add_jobs();
  skipped->set_job_id(5);
  skipped->set_spec_json(q2_p);
  skipped->set_skipped_reason("early abort: wikitext2 ppl 900 > 3 x FP 10.5");
  AddJob(&r.jobs, 1, fp_w, pb::JOB_STATE_SUCCEEDED, "");
  AddJob(&r.jobs, 2, fp_p, pb::JOB_STATE_SUCCEEDED, "");
  AddJob(&r.jobs, 3, q_w, pb::JOB_STATE_SUCCEEDED, "");
  AddJob(&r.jobs, 4, q_p, pb::JOB_STATE_FAILED, "piqa: boom");
  AddJob(&r.jobs, 5, q2_p, pb::JOB_STATE_SKIPPED, "");
  return r;
}

}  // namespace

TEST_CASE(
    "the report's data puts a failed job in its cell and lists every job that did not "
    "succeed with its reason",
    "[cli]") {
  const json report = json::parse(bitsweep::cli::ReportJson(Sweep(), nullptr));
  CHECK(report["title"] == "bitsweep report: sweep 7 (paper)");
  CHECK(report["paper_tasks"][0]["task"] == "wikitext2");
  CHECK(report["paper_tasks"][8]["title"] == "MMLU");
  REQUIRE(report["sweeps"].size() == 1);
  const json& s = report["sweeps"][0];
  bool failed_cell = false;
  for (const json& row : s["table"]["rows"]) {
    if (row["label"] != "rtn w4") continue;
    const json& cell = row["cells"]["piqa acc"];
    failed_cell = cell["failed"] == "piqa: boom" && cell["value"].is_null() && cell["job_id"] == 4;
  }
  CHECK(failed_cell);
  REQUIRE(s["problems"].size() == 2);
  CHECK(s["problems"][0]["state"] == "FAILED");
  CHECK(s["problems"][0]["reason"] == "piqa: boom");
  CHECK(s["problems"][0]["model"] == "Qwen3-0.6B");
  CHECK(s["problems"][0]["quant"] == "rtn w4");
  CHECK(s["problems"][1]["state"] == "SKIPPED");
  CHECK(s["problems"][1]["reason"] == "early abort: wikitext2 ppl 900 > 3 x FP 10.5");
}

TEST_CASE("the report's provenance counts the jobs of each code version and data file", "[cli]") {
  const bitsweep::cli::ReportSweep a = Sweep();
  bitsweep::cli::ReportSweep b = Sweep();
  b.sweep.set_id(8);
  const json report = json::parse(bitsweep::cli::ReportJson(a, &b));
  CHECK(report["title"] == "bitsweep report: sweep 7 (paper) vs sweep 8 (paper)");
  REQUIRE(report["sweeps"].size() == 2);
  CHECK(report["sweeps"][1]["id"] == 8);
  const json& p = report["sweeps"][0]["provenance"];
  CHECK(p["jobs"] == 3);
  REQUIRE(p["code_versions"].size() == 2);
  CHECK(p["code_versions"][0]["value"] == "v1");
  CHECK(p["code_versions"][0]["jobs"] == 2);
  CHECK(p["code_versions"][0]["job_ids"] == json::array({1, 2}));
  CHECK(p["code_versions"][1]["value"] == "v2");
  // Per task: the worker's hashed files, then a file only the evaluation names (no hash known).
  REQUIRE(p["data_files"].size() == 4);
  CHECK(p["data_files"][0]["file"] == "wikitext2/wiki.test.raw");
  CHECK(p["data_files"][0]["sha256"] == "abc");
  CHECK(p["data_files"][0]["task"] == "wikitext2");
  CHECK(p["data_files"][1]["file"] == "piqa/valid.jsonl");
  CHECK(p["data_files"][1]["sha256"] == "");
  CHECK(p["data_files"][2]["task"] == "piqa");
  CHECK(p["data_files"][2]["jobs"] == 1);
  CHECK(p["checkpoints"][0]["digest"] == "d");
  CHECK(p["checkpoints"][0]["jobs"] == 2);
}
