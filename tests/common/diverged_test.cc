// A diverged model's failure reason (common/diverged.h) and how the results table shows it.
#include "common/diverged.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "common/job_spec.h"
#include "common/results_table.h"
#include "common/sweep.h"

namespace bitsweep {
namespace {

TEST_CASE("a diverged metric's reason names the metric and reads back as its value") {
  const double inf = std::numeric_limits<double>::infinity();
  CHECK(DivergedReason("ppl", inf) == "ppl is inf: the quantized model diverges");
  CHECK(DivergedReason("acc", std::nan("")) == "acc is nan: the quantized model diverges");
  CHECK(DivergedReasonUnknown("ppl") == "ppl is not a finite number: the quantized model diverges");
  auto parsed = ParseDivergedReason("ppl is inf: the quantized model diverges");
  REQUIRE(parsed.has_value());
  CHECK(parsed->metric == "ppl");
  CHECK(parsed->value == inf);
  CHECK(ParseDivergedReason("nll is -inf: the quantized model diverges")->value == -inf);
  CHECK(std::isnan(ParseDivergedReason(DivergedReasonUnknown("acc"))->value));
  CHECK_FALSE(ParseDivergedReason("lease expired").has_value());
  CHECK_FALSE(ParseDivergedReason("ppl is 12: the quantized model diverges").has_value());
  CHECK_FALSE(ParseDivergedReason(" is inf: the quantized model diverges").has_value());
}

TEST_CASE("a diverged model shows in the results table as inf, in the column of its settings") {
  auto sweep = ParseSweepYaml(R"(name: t
models: [/m/a]
methods:
  - {method: [rtn], wbits: [2], group: [64]}
tasks: [wikitext2]
)",
                              "t.yaml");
  REQUIRE(sweep.ok());
  auto expanded = ExpandSweep(*sweep);
  REQUIRE(expanded.ok());
  REQUIRE(expanded->jobs.size() == 2);  // the baseline and rtn w2
  const JobSpec& fp = expanded->jobs[0].quant.method == "fp" ? expanded->jobs[0] : expanded->jobs[1];
  const JobSpec& rtn = &fp == &expanded->jobs[0] ? expanded->jobs[1] : expanded->jobs[0];
  // The diverged row comes first and carries no provenance; the baseline names its data file.
  const std::vector<ResultInput> in = {
      {2, JobSpecToJson(rtn), "ppl", std::numeric_limits<double>::infinity(), 0, 0, "{}"},
      {1, JobSpecToJson(fp), "ppl", 20.5, 0, 4,
       R"({"eval": {"file": "/data/wikitext2/wiki.test.raw"}})"}};
  const ResultsTable table = PivotResults(in);
  REQUIRE(table.columns.size() == 1);
  REQUIRE(table.rows.size() == 2);
  const std::string text = RenderResultsTable(table, ResultsFormat::kText);
  INFO(text);
  CHECK(text.find("20.500") != std::string::npos);
  CHECK(text.find("inf") != std::string::npos);
  CHECK(FormatResultValue(table.columns[0], std::nan("")) == "nan");
}

}  // namespace
}  // namespace bitsweep
