#include "common/results_table.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "common/job_spec.h"
#include "common/sweep.h"

namespace bitsweep {
namespace {

// fp, rtn w3/w4 g64 and gptq w4 g64 on one model; wikitext2 (ppl) and piqa (acc).
std::vector<JobSpec> Specs() {
  auto spec = ParseSweepYaml(R"(name: t
models: [/m/a]
methods:
  - {method: [rtn], wbits: [3, 4], group: [64]}
  - {method: [gptq], wbits: [4], group: [64]}
tasks: [wikitext2, piqa]
)",
                             "t.yaml");
  REQUIRE(spec.ok());
  auto expanded = ExpandSweep(*spec);
  REQUIRE(expanded.ok());
  return expanded->jobs;
}

std::vector<ResultInput> Inputs() {
  std::vector<ResultInput> in;
  int64_t id = 0;
  for (const JobSpec& s : Specs()) {
    ++id;
    const bool ppl = s.eval.task == "wikitext2";
    const double base = s.quant.method == "fp" ? 10 : 10 + (8 - s.quant.wbits);
    if (ppl) {
      in.push_back(
          {id, JobSpecToJson(s), "ppl", base + (s.quant.method == "gptq" ? 0.5 : 0), 0, 4});
    } else {
      in.push_back({id, JobSpecToJson(s), "acc", 0.7 - 0.01 * (16 - s.quant.wbits), 0.01, 100});
      in.push_back({id, JobSpecToJson(s), "acc_norm", 0.9, 0.01, 100});  // not a headline metric
    }
  }
  return in;
}

TEST_CASE(
    "results pivot into rows per quantization with the FP baseline first and a column per "
    "task's headline metric") {
  const ResultsTable t = PivotResults(Inputs());
  REQUIRE(t.columns.size() == 2);
  CHECK(t.columns[0].name == "wikitext2 ppl");
  CHECK(t.columns[0].lower_is_better);
  CHECK(t.columns[1].name == "piqa acc");
  CHECK_FALSE(t.columns[1].lower_is_better);
  REQUIRE(t.rows.size() == 4);
  CHECK(t.rows[0].baseline);
  CHECK(t.rows[0].label == "FP (baseline)");
  CHECK(t.rows[1].label == "gptq w4 g64");
  CHECK(t.rows[2].label == "rtn w3 g64");
  CHECK(t.rows[3].label == "rtn w4 g64");
  CHECK(t.rows[2].series == "rtn g64");
  CHECK(t.rows[3].series == "rtn g64");
  CHECK(t.rows[1].series == "gptq g64");
  CHECK(t.rows[2].cells.at("wikitext2 ppl").value == Approx(15));
  CHECK(t.rows[1].cells.at("wikitext2 ppl").value == Approx(14.5));
  CHECK(t.rows[0].cells.at("piqa acc").value == Approx(0.7));
  CHECK(t.rows[0].cells.at("piqa acc").n == 100);
  CHECK(t.unreadable == 0);
}

TEST_CASE("the results table's JSON carries every row, cell and column the dashboard reads") {
  auto j = nlohmann::json::parse(ResultsTableToJson(PivotResults(Inputs())));
  REQUIRE(j["rows"].size() == 4);
  CHECK(j["columns"][0]["name"] == "wikitext2 ppl");
  CHECK(j["rows"][0]["baseline"] == true);
  CHECK(j["rows"][2]["wbits"] == 3);
  CHECK(j["rows"][2]["group"] == 64);
  CHECK(j["rows"][2]["cells"]["wikitext2 ppl"]["value"].get<double>() == Approx(15));
  CHECK(j["rows"][2]["cells"]["wikitext2 ppl"]["job_id"].get<int64_t>() > 0);
}

TEST_CASE("unreadable specs are counted and left out of the table") {
  const ResultsTable t = PivotResults({{1, "not json", "ppl", 3, 0, 1}});
  CHECK(t.rows.empty());
  CHECK(t.unreadable == 1);
}

TEST_CASE("values are formatted as the text table prints them") {
  CHECK(FormatResultValue({"w ppl", "w", "ppl", true}, 12.34567) == "12.346");
  CHECK(FormatResultValue({"p acc", "p", "acc", false}, 0.712345) == "0.7123");
}

}  // namespace
}  // namespace bitsweep
