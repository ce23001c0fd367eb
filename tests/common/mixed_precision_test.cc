#include "common/mixed_precision.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <functional>
#include <string>
#include <vector>

#include "common/job_spec.h"
#include "common/results_table.h"
#include "common/sweep.h"
#include "tests/testing/paths.h"

using namespace bitsweep;

namespace {

QuantOverride Layers(const std::string& layers, int wbits, int group = 0) {
  QuantOverride o;
  o.layers = layers;
  o.wbits = wbits;
  o.group_size = group;
  return o;
}

QuantOverride Linear(const std::string& linear, int wbits, int group = 0) {
  QuantOverride o;
  o.linear = linear;
  o.wbits = wbits;
  o.group_size = group;
  return o;
}

QuantConfig Rtn(int wbits, std::vector<QuantOverride> overrides) {
  QuantConfig q;
  q.method = "rtn";
  q.wbits = wbits;
  q.group_size = 128;
  q.overrides = std::move(overrides);
  return q;
}

QuantConfig Normal(const QuantConfig& q) {
  auto n = NormalizeQuantConfig(q);
  INFO(n.status().ToString());
  REQUIRE(n.ok());
  return *n;
}

std::string Error(const QuantConfig& q) {
  auto n = NormalizeQuantConfig(q);
  REQUIRE_FALSE(n.ok());
  CHECK(n.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(n.status().message());
}

JobSpec Spec(const QuantConfig& q) {
  JobSpec s;
  s.model = "models/demo";
  s.quant = q;
  s.eval.task = "wikitext2";
  auto n = NormalizeJobSpec(s);
  INFO(n.status().ToString());
  REQUIRE(n.ok());
  return *n;
}

// The sweep `yaml` expanded on the shipped 4-layer demo model (its config.json read).
std::vector<JobSpec> ExpandOnDemo(const std::string& yaml) {
  auto spec = ParseSweepYaml(yaml, "t.yaml");
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  ExpandOptions o;
  o.model_root = testing::SourceDir();
  auto e = ExpandSweep(*spec, o);
  INFO(e.status().ToString());
  REQUIRE(e.ok());
  return e->jobs;
}

// One wikitext2 ppl result per job, 6.0 for the first and one more for each next, with the
// provenance `provenance(job)`.
std::vector<ResultInput> PplInputs(const std::vector<JobSpec>& jobs,
                                   const std::function<std::string(const JobSpec&)>& provenance) {
  std::vector<ResultInput> in;
  for (size_t i = 0; i < jobs.size(); ++i) {
    ResultInput r;
    r.job_id = static_cast<int64_t>(i + 1);
    r.spec_json = JobSpecToJson(jobs[i]);
    r.metric = "ppl";
    r.value = 6.0 + static_cast<double>(i);
    r.provenance_json = provenance(jobs[i]);
    in.push_back(r);
  }
  return in;
}

}  // namespace

TEST_CASE("Layer ranges parse to sorted indices and format back compactly") {
  auto l = ParseLayerRanges("7, 0-3,2");
  REQUIRE(l.ok());
  CHECK(*l == std::vector<int64_t>{0, 1, 2, 3, 7});
  CHECK(FormatLayerRanges(*l) == "0-3,7");
  CHECK_FALSE(ParseLayerRanges("3-1").ok());
  CHECK_FALSE(ParseLayerRanges("a").ok());
  CHECK_FALSE(ParseLayerRanges("").ok());
  CHECK_FALSE(ParseLayerRanges("-1").ok());
  CHECK_FALSE(ParseLayerRanges("0-99999").ok());
}

TEST_CASE("The last matching override wins per field, and wbits 16 keeps a linear in FP") {
  const QuantConfig q =
      Normal(Rtn(3, {Layers("0-3", 4), Linear("down_proj", 0, 64), Layers("2", 16)}));
  CHECK(ResolveLinearPrecision(q, 0, "self_attn.q_proj") == LinearPrecision{4, 128});
  CHECK(ResolveLinearPrecision(q, 0, "mlp.down_proj") == LinearPrecision{4, 64});
  CHECK(ResolveLinearPrecision(q, 5, "model.layers.5.mlp.down_proj") == LinearPrecision{3, 64});
  CHECK(ResolveLinearPrecision(q, 5, "mlp.experts.3.up_proj") == LinearPrecision{3, 128});
  CHECK(ResolveLinearPrecision(q, 2, "mlp.down_proj").keep_fp());
  CHECK(ResolveLinearPrecision(q, 2, "mlp.down_proj").group_size == -1);
}

TEST_CASE("A uniform recipe keeps its artifact key, and overrides that change nothing vanish") {
  const JobSpec plain = Spec(Rtn(3, {}));
  CHECK(plain.ArtifactKey().find("overrides") == std::string::npos);
  CHECK(JobSpecToJson(plain).find("overrides") == std::string::npos);
  // {wbits: 3} on every linear of a w3 recipe, and one override that sets every type to w4.
  CHECK(Spec(Rtn(3, {Linear("q_proj", 3)})).ArtifactKey() == plain.ArtifactKey());
  CHECK(Spec(Rtn(3, {Linear("", 4)})).ArtifactKey() == Spec(Rtn(4, {})).ArtifactKey());
}

TEST_CASE("Equal mixed recipes written differently have one canonical form and key") {
  const QuantConfig a = Normal(Rtn(3, {Layers("0-3", 4), Linear("down_proj", 4)}));
  const QuantConfig b = Normal(Rtn(
      3, {Linear("mlp.down_proj", 4), Layers("3", 4), Layers("0-2", 4), Layers("1", 4)}));
  CHECK(OverridesText(a.overrides) == "down_proj:w4g128 L0-3:w4g128");
  CHECK(OverridesText(a.overrides) == OverridesText(b.overrides));
  CHECK(Spec(a).ArtifactKey() == Spec(b).ArtifactKey());
  CHECK(Spec(a).ArtifactKey() != Spec(Rtn(3, {})).ArtifactKey());
  CHECK(DescribeQuant(a) == "rtn w3 g128 down_proj:w4g128 L0-3:w4g128");
  // A layer mostly at one precision is one layer entry plus its exceptions.
  QuantOverride down0 = Linear("down_proj", 2);
  down0.layers = "0";
  const QuantConfig d = Normal(Rtn(3, {Layers("0", 4), Linear("down_proj", 2)}));
  CHECK(OverridesText(d.overrides) == "down_proj:w2g128 L0:w4g128 L0:down_proj:w2g128");
  CHECK(OverridesText(Normal(Rtn(3, {Linear("down_proj", 2), Layers("0", 4), down0})).overrides) ==
        OverridesText(d.overrides));
  // A layer whose linears are all overridden alike is one layer entry.
  const QuantConfig c = Normal(Rtn(3, {Layers("1", 2, 64)}));
  CHECK(OverridesText(c.overrides) == "L1:w2g64");
}

TEST_CASE("A mixed spec survives its JSON round trip with the same key") {
  const JobSpec s = Spec(Rtn(3, {Layers("0-1", 4), Linear("o_proj,v_proj", 16)}));
  auto back = JobSpecFromJson(JobSpecToJson(s));
  INFO(back.status().ToString());
  REQUIRE(back.ok());
  CHECK(back->ArtifactKey() == s.ArtifactKey());
  CHECK(OverridesText(back->quant.overrides) == OverridesText(s.quant.overrides));
}

TEST_CASE("Overrides that make no sense are errors naming the field") {
  CHECK(Error(Rtn(3, {Layers("0-3", 9)})) ==
        "quant.overrides[0].wbits: rtn takes 1..8 weight bits or 16 (full precision), got 9");
  CHECK(Error(Rtn(3, {Linear("gate", 4)})).rfind("quant.overrides[0].linear: unknown linear", 0) ==
        0);
  CHECK(Error(Rtn(3, {Layers("x", 4)})).rfind("quant.overrides[0].layers:", 0) == 0);
  CHECK(Error(Rtn(3, {Layers("1", 0)})) ==
        "quant.overrides[0].wbits: the entry sets neither wbits nor group_size");
  QuantConfig sq;
  sq.method = "smoothquant";
  sq.wbits = 8;
  sq.overrides = {Layers("0", 16)};
  CHECK(Error(sq).rfind("quant.overrides[0].wbits: smoothquant quantizes every linear's input", 0) ==
        0);
  sq.overrides = {Layers("0", 4)};
  CHECK(Normal(sq).overrides.size() == 1);
  QuantConfig billm;
  billm.method = "billm";
  billm.wbits = 1;
  billm.overrides = {Layers("0", 2)};
  CHECK(Error(billm).rfind("quant.overrides[0].wbits: billm binarises", 0) == 0);
  billm.overrides = {Layers("0", 16)};
  CHECK(OverridesText(Normal(billm).overrides) == "L0:fp");
  QuantConfig fp;
  fp.overrides = {Layers("0", 4)};
  CHECK(Error(fp) == "quant.overrides: fp quantizes nothing to override");
}

TEST_CASE("Override layers are checked against the model's depth") {
  const QuantConfig q = Normal(Rtn(3, {Layers("2-5", 4)}));
  CHECK(ValidateOverrideLayers(q, 6).ok());
  const Status s = ValidateOverrideLayers(q, 4);
  CHECK(s.message() ==
        "quant.overrides[0].layers: layer 5 is past the model's last layer "
        "(num_hidden_layers = 4)");
}

TEST_CASE("With the model's depth, an FP-everywhere-but-one recipe has one form") {
  // "wbits 2, layers 1-3 in FP" and "everything FP, layer 0 at w2" on a 4-layer model.
  QuantConfig a = Normal(Rtn(2, {Layers("1-3", 16)}));
  QuantConfig b = Normal(Rtn(2, {Linear("", 16), Layers("0", 2)}));
  const auto field = [](std::string_view f) { return std::string(f); };
  const MethodInfo& row = **LookupMethod("rtn");
  REQUIRE(CanonicalizeOverrides(row, &a, field, 4).ok());
  REQUIRE(CanonicalizeOverrides(row, &b, field, 4).ok());
  CHECK(OverridesText(a.overrides) == "fp L0:w2g128");
  CHECK(OverridesText(b.overrides) == OverridesText(a.overrides));
  // Normalised again without the depth, the form is unchanged.
  CHECK(OverridesText(Normal(a).overrides) == OverridesText(a.overrides));
}

TEST_CASE("A mostly-FP recipe's own width, which no linear uses, does not enter its key") {
  // Everything FP but layer 0 at w2 g128, written over a base of w3, w4 or w2.
  std::vector<QuantConfig> forms;
  for (int base : {3, 4, 2}) forms.push_back(Normal(Rtn(base, {Linear("", 16), Layers("0", 2)})));
  for (const QuantConfig& q : forms) {
    CHECK(q.wbits == 2);
    CHECK(OverridesText(q.overrides) == "fp L0:w2g128");
    CHECK(Spec(q).ArtifactKey() == Spec(forms.back()).ArtifactKey());
  }
  // Two widths in use: the lowest stands in, with the model's depth or without it.
  QuantConfig two = Rtn(8, {Linear("", 16), Layers("0", 4), Layers("2", 3)});
  const QuantConfig without = Normal(two);
  CHECK(without.wbits == 3);
  const auto field = [](std::string_view f) { return std::string(f); };
  QuantConfig with = Normal(two);
  REQUIRE(CanonicalizeOverrides(**LookupMethod("rtn"), &with, field, 4).ok());
  CHECK(with.wbits == 3);
  CHECK(OverridesText(Normal(with).overrides) == OverridesText(with.overrides));
  CHECK(Normal(with).wbits == with.wbits);
}

TEST_CASE("Average bits weight each linear by its size, FP linears at 16 bits") {
  const QuantConfig q = Normal(Rtn(2, {Layers("1", 16), Linear("down_proj", 4)}));
  const LayerLinears layer = {{"self_attn.q_proj", 100}, {"mlp.down_proj", 300}};
  // Layer 0: 100 x 2 + 300 x 4; layer 1: 100 x 16 + 300 x 4 (the later down_proj entry wins).
  CHECK(AverageBitsPerWeight(q, {layer, layer}) == Approx((200.0 + 1200 + 1600 + 1200) / 800));
  CHECK(AverageBitsPerWeight(Normal(Rtn(3, {})), {layer}) == Approx(3));
}

TEST_CASE("A sweep's method overrides and sensitivity block expand on the demo model") {
  const std::string yaml =
      "name: mixed\n"
      "models: [models/demo]\n"
      "tasks: [wikitext2]\n"
      "methods:\n"
      "  - {method: rtn, wbits: 3, group: 64,\n"
      "     overrides: [{layers: \"0-1\", wbits: 4}, {linear: down_proj, wbits: 4}]}\n"
      "sensitivity: {method: rtn, wbits: 2, group: 64, unit: layer}\n";
  const std::vector<JobSpec> jobs = ExpandOnDemo(yaml);
  // FP baseline, the mixed recipe, and one job per decoder layer of the 4-layer demo model.
  REQUIRE(jobs.size() == 6);
  CHECK(DescribeQuant(jobs[1].quant) == "rtn w3 g64 down_proj:w4g64 L0-1:w4g64");
  for (int l = 0; l < 4; ++l) {
    const QuantConfig& q = jobs[2 + l].quant;
    CHECK(OverridesText(q.overrides) == "fp L" + std::to_string(l) + ":w2g64");
    for (int k = 0; k < 4; ++k) {
      CHECK(ResolveLinearPrecision(q, k, "mlp.up_proj").keep_fp() == (k != l));
    }
  }
}

TEST_CASE("A linear-type sensitivity sweep has one job per linear type") {
  const std::string yaml =
      "name: s\nmodels: [models/demo]\ntasks: [wikitext2]\nbaseline: false\n"
      "sensitivity: {method: rtn, wbits: 2, unit: linear_type}\n";
  const std::vector<JobSpec> jobs = ExpandOnDemo(yaml);
  REQUIRE(jobs.size() == 7);
  CHECK(OverridesText(jobs[0].quant.overrides) == "fp q_proj:w2g128");
}

TEST_CASE("Sweep override errors carry the file position and the field") {
  auto bad = [](const std::string& methods) {
    auto spec = ParseSweepYaml("name: t\nmodels: [m]\ntasks: [wikitext2]\nmethods:\n" + methods,
                               "t.yaml");
    REQUIRE_FALSE(spec.ok());
    return std::string(spec.status().message());
  };
  using Catch::StartsWith;
  CHECK_THAT(bad("  - {method: rtn, wbits: 3, overrides: [{layers: \"4-2\", wbits: 4}]}\n"),
             StartsWith("t.yaml:5:50: methods[0].overrides[0].layers: \"4-2\""));
  CHECK_THAT(bad("  - {method: rtn, wbits: 3, overrides: [{linear: mlp, wbits: 4}]}\n"),
             StartsWith("t.yaml:5:") && Catch::Contains("methods[0].overrides[0].linear: unknown"));
  CHECK_THAT(bad("  - {method: billm, overrides: [{layers: 0, wbits: 2}]}\n"),
             StartsWith("t.yaml:5:") && Catch::Contains("methods[0].overrides[0].wbits: billm"));
}

TEST_CASE("Results rows of a sensitivity sweep carry their unit, the average bits and the delta",
          "[results]") {
  const std::string yaml =
      "name: s\nmodels: [models/demo]\ntasks: [wikitext2]\n"
      "sensitivity: {method: rtn, wbits: 2, unit: layer}\n";
  const std::vector<JobSpec> jobs = ExpandOnDemo(yaml);
  REQUIRE(jobs.size() == 5);
  REQUIRE(jobs[0].quant.method == "fp");
  const ResultsTable t = PivotResults(PplInputs(jobs, [](const JobSpec& j) {
    return j.quant.method == "fp" ? "{}" : "{\"avg_wbits\": 12.5}";
  }));
  REQUIRE(t.rows.size() == 5);
  CHECK(t.rows[0].baseline);
  CHECK(t.rows[0].overrides.empty());
  std::vector<std::string> units;
  for (size_t i = 1; i < t.rows.size(); ++i) {
    units.push_back(t.rows[i].sensitivity_unit);
    CHECK(t.rows[i].avg_wbits == Approx(12.5));
    REQUIRE(t.rows[i].cells.size() == 1);
    CHECK(t.rows[i].cells.begin()->second.has_delta);
  }
  std::sort(units.begin(), units.end());
  CHECK(units == std::vector<std::string>{"layer 0", "layer 1", "layer 2", "layer 3"});
  const std::string json = ResultsTableToJson(t);
  CHECK(json.find("\"sensitivity_unit\":\"layer 0\"") != std::string::npos);
  CHECK(json.find("\"avg_wbits\":12.5") != std::string::npos);
}

TEST_CASE("Text, csv, markdown and latex results add an avg wbits column only when a row is mixed",
          "[results]") {
  const std::vector<JobSpec> jobs = ExpandOnDemo(
      "name: m\nmodels: [models/demo]\ntasks: [wikitext2]\n"
      "methods:\n  - {method: rtn, wbits: 4, group: 64}\n"
      "  - {method: rtn, wbits: 3, group: 64, overrides: [{layers: \"0\", wbits: 4}]}\n");
  REQUIRE(jobs.size() == 3);  // FP, rtn w4, the mixed recipe
  std::vector<ResultInput> in = PplInputs(jobs, [](const JobSpec& j) {
    return j.quant.overrides.empty() ? "{}" : "{\"avg_wbits\": 3.25}";
  });
  auto lines = [](const std::string& text) {
    std::vector<std::string> out;
    size_t start = 0;
    for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
      out.push_back(text.substr(start, nl - start));
    }
    return out;
  };
  // The row of `label` in `text` (the first line holding it).
  auto row = [&](const std::string& text, const std::string& label) {
    for (const std::string& l : lines(text)) {
      if (l.find(label) != std::string::npos) return l;
    }
    return std::string();
  };
  const ResultsTable mixed = PivotResults(in);
  const std::string text = RenderResultsTable(mixed, ResultsFormat::kText);
  INFO(text);
  CHECK(lines(text)[0].find("quantization") < lines(text)[0].find("avg wbits"));
  CHECK_THAT(row(text, "FP (baseline)"), Catch::Contains("16.00"));
  CHECK_THAT(row(text, "rtn w4 g64"), Catch::Contains("4.00"));
  CHECK_THAT(row(text, "L0:w4g64"), Catch::Contains("3.25"));
  const std::string csv = RenderResultsTable(mixed, ResultsFormat::kCsv);
  CHECK_THAT(lines(csv)[0], Catch::StartsWith("model,method,wbits,abits,group,quantization,avg_wbits,"));
  CHECK_THAT(row(csv, "L0:w4g64"), Catch::Contains(",3.25,"));
  const std::string markdown = RenderResultsTable(mixed, ResultsFormat::kMarkdown);
  CHECK_THAT(lines(markdown)[0], Catch::Contains("| avg wbits |"));
  CHECK_THAT(row(markdown, "L0:w4g64"), Catch::Contains(" 3.25 |"));
  const std::string latex = RenderResultsTable(mixed, ResultsFormat::kLatex);
  CHECK_THAT(latex, Catch::Contains("quantization & avg wbits &"));
  CHECK_THAT(row(latex, "L0:w4g64"), Catch::Contains("& 3.25 &"));

  // Before its provenance arrives, a mixed row's average is unknown: "-".
  in[2].provenance_json = "{}";
  in[1].provenance_json = "{}";
  CHECK_THAT(row(RenderResultsTable(PivotResults(in), ResultsFormat::kText), "L0:w4g64"),
             Catch::Contains("  -  "));
  // Without a mixed row: no such column in any format.
  std::vector<ResultInput> uniform;
  for (const ResultInput& r : in) {
    if (r.spec_json.find("overrides") == std::string::npos) uniform.push_back(r);
  }
  REQUIRE(uniform.size() == 2);
  for (ResultsFormat f : {ResultsFormat::kText, ResultsFormat::kCsv, ResultsFormat::kMarkdown,
                          ResultsFormat::kLatex}) {
    const std::string out = RenderResultsTable(PivotResults(uniform), f);
    CHECK(out.find("avg") == std::string::npos);
  }
}
