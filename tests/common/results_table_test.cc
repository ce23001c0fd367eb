#include "common/results_table.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <set>

#include "common/job_spec.h"
#include "common/labels.h"
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
          {id, JobSpecToJson(s), "ppl", base + (s.quant.method == "gptq" ? 0.5 : 0), 0, 4, ""});
    } else {
      in.push_back({id, JobSpecToJson(s), "acc", 0.7 - 0.01 * (16 - s.quant.wbits), 0.01, 100, ""});
      in.push_back(
          {id, JobSpecToJson(s), "acc_norm", 0.9, 0.01, 100, ""});  // not a headline metric
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
  CHECK(t.rows[2].label == "rtn w4 g64");
  CHECK(t.rows[3].label == "rtn w3 g64");
  CHECK(t.rows[2].series == "rtn g64");
  CHECK(t.rows[3].series == "rtn g64");
  CHECK(t.rows[1].series == "gptq g64");
  CHECK(t.rows[3].cells.at("wikitext2 ppl").value == Approx(15));
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
  CHECK(j["rows"][3]["wbits"] == 3);
  CHECK(j["rows"][3]["group"] == 64);
  CHECK(j["rows"][3]["model_name"] == "a");
  CHECK(j["rows"][3]["cells"]["wikitext2 ppl"]["value"].get<double>() == Approx(15));
  CHECK(j["rows"][3]["cells"]["wikitext2 ppl"]["delta"].get<double>() == Approx(5));
  CHECK(j["rows"][0]["cells"]["wikitext2 ppl"]["delta"].is_null());
  CHECK(j["rows"][3]["cells"]["wikitext2 ppl"]["job_id"].get<int64_t>() > 0);
  CHECK(j["columns"][1]["has_stderr"] == true);
  CHECK(j["columns"][0]["has_stderr"] == false);
  CHECK(j["columns"][0]["has_delta"] == true);
}

// The provenance a worker stores for a perplexity result (eval/run_task.cc's JSON, abridged).
std::string PplProvenance(int64_t windows, int64_t stream_tokens, int64_t seqlen) {
  return nlohmann::json{{"eval",
                         {{"task", "wikitext2"},
                          {"windows", windows},
                          {"stream_tokens", stream_tokens},
                          {"seqlen", seqlen}}}}
      .dump();
}

std::vector<JobSpec> Expand(const std::string& yaml) {
  auto spec = ParseSweepYaml(yaml, "t.yaml");
  REQUIRE(spec.ok());
  auto expanded = ExpandSweep(*spec);
  REQUIRE(expanded.ok());
  return expanded->jobs;
}

const ResultsRow& RowLabelled(const ResultsTable& t, const std::string& label) {
  for (const ResultsRow& r : t.rows) {
    if (r.label == label) return r;
  }
  FAIL("no row labelled " << label);
  return t.rows.front();
}

// The first case of the researcher's report: a second sweep's FP baseline on the full WikiText-2
// at seqlen 2048 (ppl 7.221) replaced the first sweep's, on 8 windows of 256 (ppl 6.061), and
// every quantized row of the first sweep then read as better than FP.
TEST_CASE(
    "baselines of different evaluation settings stay in their own columns, and a subset is "
    "marked") {
  // Sweep 1: FP and rtn w4 g64 on 8 windows of 256 (of 1,100 available).
  const auto first = Expand(R"(name: small
models: [/m/qwen3]
methods: [{method: rtn, wbits: [4], group: [64]}]
tasks: [{task: wikitext2, limit: 8}]
eval: {seqlen: 256}
)");
  // Sweep 2: FP alone on the whole test set at 2048.
  const auto second = Expand(R"(name: full
models: [/m/qwen3]
methods: []
tasks: [wikitext2]
)");
  REQUIRE(first.size() == 2);
  REQUIRE(second.size() == 1);
  std::vector<ResultInput> in;
  for (const JobSpec& s : first) {
    const bool fp = s.quant.method == "fp";
    in.push_back({fp ? 1 : 2, JobSpecToJson(s), "ppl", fp ? 6.061 : 6.300, 0, 8,
                  PplProvenance(8, 281600, 256)});
  }
  in.push_back(
      {3, JobSpecToJson(second[0]), "ppl", 7.221, 0, 137, PplProvenance(137, 281600, 2048)});

  const ResultsTable t = PivotResults(in);
  REQUIRE(t.columns.size() == 2);
  CHECK(t.columns[0].name == "wikitext2 ppl seqlen=256 windows=8 (subset)");
  CHECK(t.columns[0].subset);
  CHECK(t.columns[1].name == "wikitext2 ppl seqlen=2048 windows=all");
  CHECK_FALSE(t.columns[1].subset);
  REQUIRE(t.rows.size() == 2);
  const ResultsRow& fp = t.rows[0];
  REQUIRE(fp.baseline);
  // Both baselines are kept, each in the column of its settings.
  CHECK(fp.cells.at(t.columns[0].name).value == Approx(6.061));
  CHECK(fp.cells.at(t.columns[1].name).value == Approx(7.221));
  // The quantized row has a value only under its own settings, where it is worse than FP.
  const ResultsRow& rtn = t.rows[1];
  CHECK(rtn.label == "rtn w4 g64");
  REQUIRE(rtn.cells.size() == 1);
  CHECK(rtn.cells.at(t.columns[0].name).value > fp.cells.at(t.columns[0].name).value);
  CHECK(rtn.cells.count(t.columns[1].name) == 0);

  // The JSON the dashboard and the report read carries the settings and the mark.
  auto j = nlohmann::json::parse(ResultsTableToJson(t));
  CHECK(j["columns"][0]["subset"] == true);
  CHECK(j["columns"][0]["settings"]["windows"] == "8");
  CHECK(j["columns"][1]["settings"]["seqlen"] == "2048");
  CHECK(j["rows"][0]["cells"].size() == 2);
}

TEST_CASE("a limit that covers the whole data is not a subset, and without provenance it is") {
  const auto jobs = Expand(R"(name: s
models: [/m/qwen3]
methods: []
tasks: [{task: wikitext2, limit: 8}]
eval: {seqlen: 256}
)");
  REQUIRE(jobs.size() == 1);
  // 8 windows asked, 8 available (2,100 tokens / 256): the whole stream was scored.
  const ResultsTable whole =
      PivotResults({{1, JobSpecToJson(jobs[0]), "ppl", 6.0, 0, 8, PplProvenance(8, 2100, 256)}});
  REQUIRE(whole.columns.size() == 1);
  CHECK(whole.columns[0].name == "wikitext2 ppl");
  CHECK_FALSE(whole.columns[0].subset);
  // No provenance: the spec's limit is all there is to go on.
  const ResultsTable unknown = PivotResults({{1, JobSpecToJson(jobs[0]), "ppl", 6.0, 0, 8, ""}});
  CHECK(unknown.columns[0].name == "wikitext2 ppl windows=8 (subset)");
  // Accuracy tasks report "limited" themselves.
  const auto acc = Expand(R"(name: s
models: [/m/qwen3]
methods: []
tasks: [{task: piqa, limit: 50}]
)");
  const std::string limited =
      R"({"eval": {"task": "piqa", "limited": true, "source": "/d/piqa/valid.jsonl"}})";
  const ResultsTable t = PivotResults({{1, JobSpecToJson(acc[0]), "acc", 0.6, 0.07, 50, limited}});
  CHECK(t.columns[0].name == "piqa acc limit=50 (subset)");
  CHECK(t.columns[0].settings.back() ==
        std::make_pair(std::string("data"), std::string("piqa/valid.jsonl")));
}

// The second case: GPTQ w3 with calibration nsamples 4 (ppl 6.094) and 32 (6.038) in one sweep
// collapsed into one row "gptq w3 g64", and one result disappeared.
TEST_CASE("recipes that differ only in calibration are separate rows whose labels say how") {
  const auto jobs = Expand(R"(name: calib
models: [/m/qwen3]
methods:
  - {method: gptq, wbits: [3], group: [64], calibration: {nsamples: 4}}
  - {method: gptq, wbits: [3, 4], group: [64], calibration: {nsamples: 32}}
  - {method: rtn, wbits: [3], group: [64]}
tasks: [{task: wikitext2, limit: 8}]
eval: {seqlen: 256}
)");
  REQUIRE(jobs.size() == 5);  // fp, gptq w3 (4), gptq w3 (32), gptq w4 (32), rtn w3
  std::vector<ResultInput> in;
  int64_t id = 0;
  for (const JobSpec& s : jobs) {
    double ppl = 6.0;
    if (s.quant.method == "gptq") {
      ppl = s.quant.wbits == 4 ? 6.01 : s.calibration->nsamples == 4 ? 6.094 : 6.038;
    } else if (s.quant.method == "rtn") {
      ppl = 7.5;
    }
    in.push_back({++id, JobSpecToJson(s), "ppl", ppl, 0, 8, PplProvenance(8, 281600, 256)});
  }
  const ResultsTable t = PivotResults(in);
  REQUIRE(t.columns.size() == 1);
  const std::string col = t.columns[0].name;
  REQUIRE(t.rows.size() == 5);
  CHECK(RowLabelled(t, "gptq w3 g64 nsamples=4").cells.at(col).value == Approx(6.094));
  CHECK(RowLabelled(t, "gptq w3 g64 nsamples=32").cells.at(col).value == Approx(6.038));
  // The series is labelled alike at every width, so a plot line never mixes calibrations.
  CHECK(RowLabelled(t, "gptq w4 g64 nsamples=32").series == "gptq g64 nsamples=32");
  CHECK(RowLabelled(t, "gptq w3 g64 nsamples=32").series == "gptq g64 nsamples=32");
  CHECK(RowLabelled(t, "gptq w3 g64 nsamples=4").series == "gptq g64 nsamples=4");
  // Rows with nothing to tell apart keep their short label.
  CHECK(RowLabelled(t, "rtn w3 g64").series == "rtn g64");
  // And the job list of `bitsweep status` labels the jobs the same way.
  const std::vector<JobLabel> labels = LabelJobs(jobs);
  std::set<std::string> distinct;
  for (const JobLabel& l : labels) distinct.insert(l.quant + " | " + l.eval);
  CHECK(distinct.size() == jobs.size());
  CHECK(distinct.count("gptq w3 g64 nsamples=4 | wikitext2 windows=8") == 1);
}

TEST_CASE("labels name every setting that differs within a group, and only those") {
  const std::vector<std::string> labels = DistinctLabels({
      {"g", "a", {{"x", "1"}, {"y", "2"}}, {}},
      {"g", "a", {{"x", "1"}, {"y", "3"}}, {}},
      {"g", "b", {{"x", "1"}}, {}},                 // lacks y: differs from those that have it
      {"h", "a", {{"x", "9"}, {"y", "3"}}, {"x"}},  // another group; x shown because asked
  });
  CHECK(labels == std::vector<std::string>{"a y=2", "a y=3", "b y=-", "a x=9"});
}

TEST_CASE("unreadable specs are counted and left out of the table") {
  const ResultsTable t = PivotResults({{1, "not json", "ppl", 3, 0, 1, ""}});
  CHECK(t.rows.empty());
  CHECK(t.unreadable == 1);
}

TEST_CASE(
    "rows are ordered by bits descending within a method, weight bits before activation bits") {
  const auto jobs = Expand(R"(name: order
models: [/m/qwen3]
methods:
  - {method: rtn, wbits: [2, 8, 3, 4], group: [64]}
  - {method: gptq, wbits: [3, 4], group: [128, 64]}
tasks: [wikitext2]
)");
  std::vector<ResultInput> in;
  int64_t id = 0;
  for (const JobSpec& s : jobs) in.push_back({++id, JobSpecToJson(s), "ppl", 10.0 + id, 0, 4, ""});
  const ResultsTable t = PivotResults(in);
  std::vector<std::string> labels;
  for (const ResultsRow& r : t.rows) labels.push_back(r.label);
  CHECK(labels == std::vector<std::string>{"FP (baseline)", "gptq w4 g64", "gptq w4 g128",
                                           "gptq w3 g64", "gptq w3 g128", "rtn w8 g64",
                                           "rtn w4 g64", "rtn w3 g64", "rtn w2 g64"});
}

TEST_CASE(
    "the model column shows the folder's name, a Hugging Face snapshot's repository name, and "
    "the path where two folders share a name") {
  CHECK(ModelDisplayName("/models/Qwen3-8B") == "Qwen3-8B");
  CHECK(ModelDisplayName("/models/Qwen3-8B/") == "Qwen3-8B");
  CHECK(ModelDisplayName("/root/.cache/huggingface/hub/models--Qwen--Qwen3-0.6B/snapshots/"
                         "c1899de289a04d12100db370d81485cdf75e47ca") == "Qwen3-0.6B");
  CHECK(ModelDisplayName("/data/snapshots/abc") == "abc");  // not a cache: no models--
  const auto jobs = Expand(R"(name: names
models: [/a/Qwen3-8B, /b/Qwen3-8B, /m/Qwen3-0.6B]
methods: []
tasks: [wikitext2]
)");
  std::vector<ResultInput> in;
  int64_t id = 0;
  for (const JobSpec& s : jobs) in.push_back({++id, JobSpecToJson(s), "ppl", 10, 0, 4, ""});
  const ResultsTable t = PivotResults(in);
  REQUIRE(t.rows.size() == 3);
  CHECK(t.rows[0].model_name == "/a/Qwen3-8B");
  CHECK(t.rows[1].model_name == "/b/Qwen3-8B");
  CHECK(t.rows[2].model_name == "Qwen3-0.6B");
  CHECK(t.rows[2].model == "/m/Qwen3-0.6B");
  CHECK(RenderResultsTable(t, ResultsFormat::kText).find("\nQwen3-0.6B ") != std::string::npos);
}

TEST_CASE(
    "a sweep's model name replaces the folder's in every table, and a name two folders share "
    "falls back to the paths") {
  const std::string yaml = R"(name: named
models:
  - {path: /a/Qwen3-8B, name: Qwen3-8B (base)}
  - /b/Qwen3-8B
  - {path: /m/snap, name: tuned}
  - /n/tuned
methods: []
tasks: [wikitext2]
)";
  auto spec = ParseSweepYaml(yaml, "t.yaml");
  REQUIRE(spec.ok());
  const std::map<std::string, std::string> names = ModelNames(*spec);
  CHECK(names == std::map<std::string, std::string>{{"/a/Qwen3-8B", "Qwen3-8B (base)"},
                                                    {"/m/snap", "tuned"}});
  std::vector<ResultInput> in;
  int64_t id = 0;
  for (const JobSpec& s : Expand(yaml)) in.push_back({++id, JobSpecToJson(s), "ppl", 10, 0, 4, ""});
  const ResultsTable t = PivotResults(in, names);
  REQUIRE(t.rows.size() == 4);
  CHECK(t.rows[0].model_name == "Qwen3-8B (base)");
  CHECK(t.rows[1].model_name == "Qwen3-8B");  // no longer shares its name with /a/Qwen3-8B
  CHECK(t.rows[2].model_name == "/m/snap");   // "tuned" is also /n/tuned's folder name
  CHECK(t.rows[3].model_name == "/n/tuned");
  CHECK(t.rows[0].model == "/a/Qwen3-8B");
  CHECK(RenderResultsTable(t, ResultsFormat::kText).find("\nQwen3-8B (base) ") !=
        std::string::npos);
  CHECK(RenderResultsTable(t, ResultsFormat::kCsv).find("\nQwen3-8B (base),") != std::string::npos);
  CHECK(nlohmann::json::parse(ResultsTableToJson(t))["rows"][0]["model_name"] == "Qwen3-8B (base)");
  // Without the names, the table is as before.
  CHECK(PivotResults(in).rows[0].model_name == "/a/Qwen3-8B");
}

TEST_CASE(
    "quantized cells carry their difference to their own model's baseline in the same column, "
    "and columns say whether they have stderr") {
  const auto jobs = Expand(R"(name: d
models: [/m/a, /m/b]
methods: [{method: rtn, wbits: [4], group: [64]}]
tasks: [wikitext2, piqa]
)");
  std::vector<ResultInput> in;
  int64_t id = 0;
  for (const JobSpec& s : jobs) {
    const bool fp = s.quant.method == "fp";
    const bool b = s.model == "/m/b";
    if (s.eval.task == "wikitext2") {
      in.push_back({++id, JobSpecToJson(s), "ppl", (fp ? 10.0 : 12.5) + (b ? 100 : 0), 0, 4, ""});
    } else if (!(b && fp)) {  // model b has no piqa baseline
      in.push_back({++id, JobSpecToJson(s), "acc", fp ? 0.70 : 0.65, 0.01, 100, ""});
    }
  }
  const ResultsTable t = PivotResults(in);
  REQUIRE(t.rows.size() == 4);
  const ResultsRow& a_rtn = t.rows[1];
  const ResultsRow& b_rtn = t.rows[3];
  REQUIRE(a_rtn.model == "/m/a");
  REQUIRE(b_rtn.model == "/m/b");
  CHECK_FALSE(t.rows[0].cells.at("wikitext2 ppl").has_delta);  // the baseline itself
  CHECK(a_rtn.cells.at("wikitext2 ppl").delta == Approx(2.5));
  CHECK(a_rtn.cells.at("piqa acc").delta == Approx(-0.05));
  CHECK(b_rtn.cells.at("wikitext2 ppl").delta == Approx(2.5));  // b's baseline, not a's
  CHECK_FALSE(b_rtn.cells.at("piqa acc").has_delta);            // b has no piqa baseline
  CHECK(t.columns[0].has_delta);
  CHECK_FALSE(t.columns[0].has_stderr);  // perplexity has none
  CHECK(t.columns[1].has_stderr);
  // An accuracy column keeps its stderr column when every result is exact (stderr 0).
  std::vector<ResultInput> exact = in;
  for (ResultInput& r : exact) r.stderr_value = 0;
  CHECK(PivotResults(exact).columns[1].has_stderr);
}

// Two rows, two columns; the quantized row lacks a piqa result.
ResultsTable SmallTable() {
  ResultsTable table;
  table.columns.resize(2);
  table.columns[0].name = "wikitext2 ppl";
  table.columns[0].lower_is_better = true;
  table.columns[0].has_delta = true;
  table.columns[1].name = "piqa acc";
  table.columns[1].has_stderr = true;
  table.columns[1].has_delta = true;
  ResultsRow fp;
  fp.model = "/m/a";
  fp.model_name = "a";
  fp.method = "fp";
  fp.label = "FP (baseline)";
  fp.baseline = true;
  fp.cells["wikitext2 ppl"] = {10, 0, 4, 1};
  fp.cells["piqa acc"] = {0.7, 0.01, 100, 2};
  ResultsRow rtn;
  rtn.model = "/m/a";
  rtn.model_name = "a";
  rtn.method = "rtn";
  rtn.wbits = 4;
  rtn.group = 64;
  rtn.label = "rtn w4 g64";
  rtn.cells["wikitext2 ppl"] = {12.34567, 0, 4, 3, true, 2.34567};
  rtn.cells["piqa acc"] = {0.65, 0.012, 100, 4, true, -0.05};
  ResultsRow w3 = rtn;
  w3.wbits = 3;
  w3.group = -1;
  w3.label = "rtn w3, \"x\"";  // a label that needs CSV quoting
  w3.cells.erase("piqa acc");
  table.rows = {fp, rtn, w3};
  return table;
}

TEST_CASE(
    "the text table right-aligns numbers with stderr and vs-FP columns and ends no line in a "
    "space") {
  CHECK(RenderResultsTable(SmallTable(), ResultsFormat::kText) ==
        "model  quantization   wikitext2 ppl   vs FP  piqa acc  stderr    vs FP\n"
        "-----  -------------  -------------  ------  --------  ------  -------\n"
        "a      FP (baseline)         10.000       -    0.7000  0.0100        -\n"
        "a      rtn w4 g64            12.346  +2.346    0.6500  0.0120  -0.0500\n"
        "a      rtn w3, \"x\"           12.346  +2.346         -       -        -\n");
}

TEST_CASE("markdown rows have no trailing spaces and right-align number columns") {
  CHECK(RenderResultsTable(SmallTable(), ResultsFormat::kMarkdown) ==
        "| model | quantization  | wikitext2 ppl |  vs FP | piqa acc | stderr |   vs FP |\n"
        "|-------|---------------|--------------:|-------:|---------:|-------:|--------:|\n"
        "| a     | FP (baseline) |        10.000 |      - |   0.7000 | 0.0100 |       - |\n"
        "| a     | rtn w4 g64    |        12.346 | +2.346 |   0.6500 | 0.0120 | -0.0500 |\n"
        "| a     | rtn w3, \"x\"   |        12.346 | +2.346 |        - |      - |       - |\n");
}

TEST_CASE("csv splits method, wbits, abits and group into columns and names every extra column") {
  CHECK(RenderResultsTable(SmallTable(), ResultsFormat::kCsv) ==
        "model,method,wbits,abits,group,quantization,wikitext2 ppl,wikitext2 ppl vs FP,piqa acc,"
        "piqa acc stderr,piqa acc vs FP\n"
        "a,fp,16,16,,FP (baseline),10.000,,0.7000,0.0100,\n"
        "a,rtn,4,16,64,rtn w4 g64,12.346,+2.346,0.6500,0.0120,-0.0500\n"
        "a,rtn,3,16,channel,\"rtn w3, \"\"x\"\"\",12.346,+2.346,,,\n");
}

TEST_CASE(
    "Results in percent (--percent) print accuracies, their stderr and difference in percent, not "
    "perplexity") {
  ResultsRenderOptions percent;
  percent.percent = true;
  const std::string csv = RenderResultsTable(SmallTable(), ResultsFormat::kCsv, percent);
  CHECK(csv.find(",piqa acc (%),") != std::string::npos);
  CHECK(csv.find("a,fp,16,16,,FP (baseline),10.000,,70.00,1.00,\n") != std::string::npos);
  CHECK(csv.find(",12.346,+2.346,65.00,1.20,-5.00\n") != std::string::npos);
}

TEST_CASE("latex renders a booktabs tabular naming each model once, with escaped text") {
  ResultsRenderOptions percent;
  percent.percent = true;
  ResultsTable table = SmallTable();
  table.rows[2].label = "rtn w3 act_order=true";
  CHECK(RenderResultsTable(table, ResultsFormat::kLatex, percent) ==
        "\\begin{tabular}{llrr}\n"
        "\\toprule\n"
        "model & quantization & wikitext2 ppl & piqa acc (\\%) \\\\\n"
        "\\midrule\n"
        "a & FP (baseline) & 10.000 & 70.00$_{\\pm 1.00}$ \\\\\n"
        " & rtn w4 g64 & 12.346 & 65.00$_{\\pm 1.20}$ \\\\\n"
        " & rtn w3 act\\_order=true & 12.346 & -- \\\\\n"
        "\\bottomrule\n"
        "\\end{tabular}\n");
}

TEST_CASE("a subset column adds a note to the text, markdown and latex tables, not to csv") {
  ResultsTable table = SmallTable();
  table.columns[0].subset = true;
  const std::string note =
      "(subset): computed on the first windows (perplexity) or examples (other tasks) only, as "
      "limited by the sweep; not comparable with results on the whole data.\n";
  for (ResultsFormat f : {ResultsFormat::kText, ResultsFormat::kMarkdown}) {
    const std::string text = RenderResultsTable(table, f);
    REQUIRE(text.size() > note.size());
    CHECK(text.substr(text.size() - note.size() - 1) == "\n" + note);
  }
  const std::string latex = RenderResultsTable(table, ResultsFormat::kLatex);
  CHECK(latex.substr(latex.size() - note.size() - 2) == "% " + note);
  CHECK(RenderResultsTable(table, ResultsFormat::kCsv).find("(subset)") == std::string::npos);
  CHECK(RenderResultsTable(SmallTable(), ResultsFormat::kText).find("(subset)") ==
        std::string::npos);
}

TEST_CASE("a table without rows renders as no results yet in every format") {
  for (ResultsFormat f : {ResultsFormat::kText, ResultsFormat::kCsv, ResultsFormat::kMarkdown,
                          ResultsFormat::kLatex}) {
    CHECK(RenderResultsTable(ResultsTable(), f) == "no results yet\n");
  }
}

TEST_CASE("values are formatted as the text table prints them") {
  ResultsColumn ppl, acc;
  ppl.metric = "ppl";
  ppl.lower_is_better = true;
  acc.metric = "acc";
  CHECK(FormatResultValue(ppl, 12.34567) == "12.346");
  CHECK(FormatResultValue(acc, 0.712345) == "0.7123");
  CHECK(FormatResultValue(acc, 0.712345, true) == "71.23");
  CHECK(FormatResultValue(ppl, 12.34567, true) == "12.346");  // percent is for accuracies only
  CHECK(FormatResultDelta(ppl, 1.5) == "+1.500");
  CHECK(FormatResultDelta(acc, -0.0123, true) == "-1.23");
  CHECK(FormatResultDelta(acc, -0.00001) == "+0.0000");  // rounds to zero: no minus sign
}

}  // namespace
TEST_CASE("a job skipped by early abort reads skipped in its cell, with its reason below") {
  std::vector<ResultInput> in;
  int64_t id = 0;
  const std::string reason =
      "early abort: wikitext2 ppl 965.3 > 3 x FP 6.3 = 18.9 (early_abort: {ppl_ratio: 3, on: "
      "wikitext2})";
  for (const JobSpec& s : Specs()) {
    const bool diverged = s.quant.method == "rtn" && s.quant.wbits == 3;
    if (s.eval.task == "wikitext2") {
      in.push_back({++id, JobSpecToJson(s), "ppl", diverged ? 965.3 : 6.3, 0, 8, "", ""});
    } else if (diverged) {
      in.push_back(SkippedResultInput(++id, JobSpecToJson(s), reason));
    } else {
      in.push_back({++id, JobSpecToJson(s), "acc", 0.7, 0.01, 100, "", ""});
    }
  }
  const ResultsTable t = PivotResults(in);
  REQUIRE(t.columns.size() == 2);
  const ResultsRow* rtn3 = nullptr;
  for (const ResultsRow& r : t.rows) {
    if (r.method == "rtn" && r.wbits == 3) rtn3 = &r;
  }
  REQUIRE(rtn3 != nullptr);
  const ResultsCell& cell = rtn3->cells.at("piqa acc");
  CHECK(cell.skipped == reason);
  CHECK_FALSE(cell.has_delta);
  const std::string text = RenderResultsTable(t, ResultsFormat::kText);
  CHECK_THAT(text, Catch::Contains("skipped"));
  CHECK_THAT(text, Catch::Contains("skipped: a rtn w3 g64: " + reason));
  auto j = nlohmann::json::parse(ResultsTableToJson(t));
  bool found = false;
  for (const auto& row : j["rows"]) {
    if (row["label"] != "rtn w3 g64") continue;
    found = true;
    CHECK(row["cells"]["piqa acc"]["skipped"] == reason);
    CHECK(row["cells"]["piqa acc"]["value"].is_null());
  }
  CHECK(found);
}

TEST_CASE("a job that failed without a result sits in its cell as failed, with its error") {
  std::vector<ResultInput> in;
  int64_t id = 0;
  for (const JobSpec& s : Specs()) {
    const bool failed = s.quant.method == "rtn" && s.quant.wbits == 3 && s.eval.task == "piqa";
    if (failed) {
      in.push_back(FailedResultInput(++id, JobSpecToJson(s), "piqa: out of memory"));
    } else if (s.eval.task == "wikitext2") {
      in.push_back({++id, JobSpecToJson(s), "ppl", 6.3, 0, 8, "", ""});
    } else {
      in.push_back({++id, JobSpecToJson(s), "acc", 0.7, 0.01, 100, "", ""});
    }
  }
  const ResultsTable t = PivotResults(in);
  REQUIRE(t.columns.size() == 2);
  const ResultsCell& cell = RowLabelled(t, "rtn w3 g64").cells.at("piqa acc");
  CHECK(cell.failed == "piqa: out of memory");
  CHECK(cell.skipped.empty());
  CHECK_FALSE(cell.has_delta);
  const std::string text = RenderResultsTable(t, ResultsFormat::kText);
  CHECK_THAT(text, Catch::Contains("failed"));
  CHECK_THAT(text, !Catch::Contains("nan"));
  auto j = nlohmann::json::parse(ResultsTableToJson(t));
  bool found = false;
  for (const auto& row : j["rows"]) {
    if (row["label"] != "rtn w3 g64") continue;
    found = true;
    CHECK(row["cells"]["piqa acc"]["failed"] == "piqa: out of memory");
    CHECK(row["cells"]["piqa acc"]["value"].is_null());
  }
  CHECK(found);
}

TEST_CASE(
    "a tagged rerun of the same recipes is a model group of its own with its own FP baseline") {
  std::vector<ResultInput> in = Inputs();
  // The same jobs under run_tag v2 (a new code version): every value 1 higher, ids after.
  const size_t n = in.size();
  for (size_t i = 0; i < n; ++i) {
    auto spec = JobSpecFromJson(in[i].spec_json);
    REQUIRE(spec.ok());
    spec->run_tag = "v2";
    ResultInput again = in[i];
    again.job_id += 100;
    again.spec_json = JobSpecToJson(*spec);
    again.value += 1;
    in.push_back(again);
  }
  const ResultsTable t = PivotResults(in);
  REQUIRE(t.rows.size() == 8);
  for (size_t g = 0; g < 2; ++g) {
    const ResultsRow& base = t.rows[4 * g];
    INFO("group " << g);
    CHECK(base.baseline);
    CHECK(base.run_tag == (g == 0 ? "" : "v2"));
    CHECK(ModelColumnText(base) == (g == 0 ? "a" : "a run=v2"));
    for (size_t r = 4 * g + 1; r < 4 * g + 4; ++r) {
      const ResultsRow& row = t.rows[r];
      CHECK(row.run_tag == base.run_tag);
      CHECK(SameModelGroup(row, base));
      // Labels are the untagged ones: the tag shows with the model, not in every recipe.
      CHECK(row.label == t.rows[r - 4 * g].label);
      const ResultsCell& cell = row.cells.at("wikitext2 ppl");
      REQUIRE(cell.has_delta);
      // Each group's delta is to its own baseline, so both groups show the same differences.
      CHECK(cell.delta == t.rows[r - 4 * g].cells.at("wikitext2 ppl").delta);
      CHECK(cell.delta == cell.value - base.cells.at("wikitext2 ppl").value);
    }
  }
  CHECK_FALSE(SameModelGroup(t.rows[0], t.rows[4]));
  const nlohmann::json j = nlohmann::json::parse(ResultsTableToJson(t));
  CHECK_FALSE(j["rows"][0].contains("run_tag"));
  CHECK(j["rows"][4]["run_tag"] == "v2");
  const std::string text = RenderResultsTable(t, ResultsFormat::kText);
  CHECK(text.find("a run=v2") != std::string::npos);
  CHECK_THAT(RenderResultsTable(t, ResultsFormat::kLatex), Catch::Contains("a run=v2"));
}

}  // namespace bitsweep
