#include "common/catalog.h"

#include <catch2/catch.hpp>
#include <set>
#include <string>

using namespace bitsweep;

TEST_CASE("The method catalog holds fp and the study's five methods with their bit ranges") {
  std::set<std::string> names;
  for (const MethodInfo& m : Methods()) names.insert(m.name);
  CHECK(names == std::set<std::string>{"fp", "rtn", "gptq", "awq", "smoothquant", "billm"});

  const MethodInfo& rtn = **LookupMethod("rtn");
  CHECK(rtn.min_wbits == 1);
  CHECK(rtn.max_wbits == 8);
  CHECK_FALSE(rtn.needs_calibration);
  CHECK(rtn.group_size_applies);
  for (const char* name : {"gptq", "awq"}) {
    const MethodInfo& m = **LookupMethod(name);
    CHECK(m.min_wbits == 2);
    CHECK(m.max_wbits == 8);
    CHECK(m.needs_calibration);
    CHECK_FALSE(m.takes_abits);
  }
  const MethodInfo& sq = **LookupMethod("smoothquant");
  CHECK(sq.takes_abits);
  CHECK(sq.min_abits == 2);
  CHECK(sq.max_abits == 8);
  CHECK_FALSE(sq.group_size_applies);
  const MethodInfo& billm = **LookupMethod("billm");
  CHECK(billm.min_wbits == 1);
  CHECK(billm.max_wbits == 1);
  CHECK((*LookupMethod("gptq"))->name == std::string("gptq"));
  CHECK((*LookupMethod("fp"))->needs_calibration == false);
}

TEST_CASE("Calibration defaults per method follow the README's calibration table") {
  const CalibrationDefaults& gptq = (*LookupMethod("gptq"))->calibration;
  CHECK(gptq.nsamples == 128);
  CHECK(gptq.seqlen == 2048);
  CHECK(gptq.seed == 0);
  const CalibrationDefaults& awq = (*LookupMethod("awq"))->calibration;
  CHECK(awq.seqlen == 512);
  CHECK(awq.seed == 42);
  CHECK(std::string(awq.procedure) == "awq-blocks");
  const CalibrationDefaults& sq = (*LookupMethod("smoothquant"))->calibration;
  CHECK(sq.nsamples == 512);
  CHECK(sq.seqlen == 512);
}

TEST_CASE("Looking up an unknown method fails and lists the known names") {
  auto m = LookupMethod("gtpq");
  REQUIRE_FALSE(m.ok());
  CHECK(m.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(m.status().message()),
             Catch::Contains("gtpq") && Catch::Contains("smoothquant"));
}

TEST_CASE("Method and task names ignore case, a typo suggests the closest name") {
  REQUIRE(LookupMethod("GPTQ").ok());
  CHECK(std::string((*LookupMethod("GPTQ"))->name) == "gptq");
  CHECK(std::string((*LookupMethod("SmoothQuant"))->name) == "smoothquant");
  CHECK(std::string((*LookupTask("ARC_Easy"))->name) == "arc_easy");
  CHECK_THAT(std::string(LookupMethod("gtpq").status().message()),
             Catch::Contains("did you mean \"gptq\"?"));
  CHECK_THAT(std::string(LookupMethod("BILM").status().message()),
             Catch::Contains("did you mean \"billm\"?"));
  CHECK_THAT(std::string(LookupTask("winogrand").status().message()),
             Catch::Contains("did you mean \"winogrande\"?"));
  // Too far from every name (or too short to guess from): the known names only.
  CHECK_THAT(std::string(LookupMethod("q").status().message()), !Catch::Contains("did you mean"));
  CHECK_THAT(std::string(LookupTask("squad").status().message()), !Catch::Contains("did you mean"));
}

TEST_CASE("The task catalog gives each task its kind and lm-eval's metrics") {
  CHECK(Tasks().size() == 9);
  CHECK((*LookupTask("wikitext2"))->kind == TaskKind::kPerplexity);
  REQUIRE((*LookupTask("c4"))->metrics.size() == 1);
  CHECK(std::string((*LookupTask("c4"))->metrics[0]) == "ppl");
  for (const char* name : {"piqa", "arc_easy", "arc_challenge", "hellaswag"}) {
    const TaskInfo& t = **LookupTask(name);
    CHECK(t.kind == TaskKind::kMultipleChoice);
    REQUIRE(t.metrics.size() == 2);
    CHECK(std::string(t.metrics[1]) == "acc_norm");
  }
  for (const char* name : {"winogrande", "boolq", "mmlu"}) {
    const TaskInfo& t = **LookupTask(name);
    REQUIRE(t.metrics.size() == 1);
    CHECK(std::string(t.metrics[0]) == "acc");
  }
  const TaskInfo& mmlu = **LookupTask("mmlu");
  CHECK(mmlu.kind == TaskKind::kKShot);
  CHECK(mmlu.default_num_fewshot == 5);
  CHECK(std::string(TaskKindName(mmlu.kind)) == "k_shot");
}

TEST_CASE("A task given as a .jsonl path is a custom multiple-choice task, other unknown names fail") {
  auto t = LookupTask("data/facts.jsonl");
  REQUIRE(t.ok());
  CHECK(std::string((*t)->name) == "file");
  CHECK((*t)->kind == TaskKind::kMultipleChoice);
  CHECK_FALSE(LookupTask("data/heldout.txt").ok());
  auto bad = LookupTask("wikitext");
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(std::string(bad.status().message()), Catch::Contains("wikitext2"));
}

TEST_CASE("An option of another method is refused naming the method that owns it") {
  const MethodInfo& gptq = **LookupMethod("gptq");
  CHECK(LookupOption(gptq, "act_order").ok());
  auto alpha = LookupOption(gptq, "alpha");
  REQUIRE_FALSE(alpha.ok());
  CHECK_THAT(std::string(alpha.status().message()),
             Catch::Contains("applies to smoothquant, not gptq"));
  auto typo = LookupOption(gptq, "act-order");
  REQUIRE_FALSE(typo.ok());
  CHECK_THAT(std::string(typo.status().message()), Catch::Contains("unknown option"));
  CHECK_FALSE(LookupOption(**LookupMethod("fp"), "alpha").ok());
}

TEST_CASE("Option values are canonicalised and checked against the option's range") {
  const MethodInfo& awq = **LookupMethod("awq");
  const MethodOption& grid = **LookupOption(awq, "awq_n_grid");
  CHECK(*NormalizeOptionValue(grid, " 20 ") == "20");
  CHECK_FALSE(NormalizeOptionValue(grid, "0").ok());
  CHECK_FALSE(NormalizeOptionValue(grid, "20.5").ok());
  const MethodOption& shrink = **LookupOption(awq, "awq_max_shrink");
  CHECK(*NormalizeOptionValue(shrink, "0.50") == "0.5");
  CHECK(*NormalizeOptionValue(shrink, "5e-1") == "0.5");
  auto out_of_range = NormalizeOptionValue(shrink, "1.5");
  REQUIRE_FALSE(out_of_range.ok());
  CHECK_THAT(std::string(out_of_range.status().message()), Catch::Contains("awq_max_shrink"));
  const MethodOption& clip = **LookupOption(awq, "awq_no_clip");
  CHECK(*NormalizeOptionValue(clip, "Yes") == "true");
  CHECK(*NormalizeOptionValue(clip, "0") == "false");
  CHECK_FALSE(NormalizeOptionValue(clip, "maybe").ok());
  const MethodOption& sal = **LookupOption(**LookupMethod("billm"), "billm_saliency");
  CHECK(*NormalizeOptionValue(sal, "Magnitude") == "magnitude");
  CHECK_FALSE(NormalizeOptionValue(sal, "random").ok());
  const MethodOption& damp = **LookupOption(**LookupMethod("gptq"), "percdamp");
  CHECK(*NormalizeOptionValue(damp, "0.01") == "0.01");
  CHECK(*NormalizeOptionValue(damp, "1e-2") == "0.01");
}

TEST_CASE("Every option default is already in canonical form") {
  for (const MethodInfo& m : Methods()) {
    for (const MethodOption* o : m.options) {
      auto v = NormalizeOptionValue(*o, o->default_value);
      INFO(m.name << "." << o->name);
      REQUIRE(v.ok());
      CHECK(*v == o->default_value);
    }
  }
}
