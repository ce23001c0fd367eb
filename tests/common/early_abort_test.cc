#include "common/early_abort.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>

#include "common/sweep.h"
#include "tests/testing/paths.h"

using namespace bitsweep;

namespace {

const char* kSweep = "name: t\nmodels: [/models/absent]\ntasks: [wikitext2, c4, piqa]\n";

std::string ParseError(const std::string& yaml) {
  auto spec = ParseSweepYaml(yaml, "t.yaml");
  REQUIRE_FALSE(spec.ok());
  CHECK(spec.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(spec.status().message());
}

EarlyAbortRule Rule(double ratio = 3, const std::string& on = "wikitext2") {
  EarlyAbortRule r;
  r.ppl_ratio = ratio;
  r.on = on;
  return r;
}

ArtifactJob Job(int64_t id, const std::string& task, JobState state,
                std::optional<EarlyAbortRule> rule = Rule()) {
  ArtifactJob j;
  j.id = id;
  j.task = task;
  j.state = state;
  if (rule) {
    j.rules = {*rule};
  } else {
    j.unruled = true;
  }
  return j;
}

// The artifact's wikitext2 job, finished with `ppl`, its baseline finished with `fp`.
ArtifactJob Measured(double ppl, std::optional<double> fp = 6.3) {
  ArtifactJob j = Job(1, "wikitext2", JobState::kSucceeded);
  j.ppl = ppl;
  j.baseline_state = JobState::kSucceeded;
  j.baseline_ppl = fp;
  return j;
}

constexpr double kInf = std::numeric_limits<double>::infinity();

}  // namespace

TEST_CASE("The early_abort rule is parsed with its default hold") {
  auto spec = ParseSweepYaml(std::string(kSweep) + "early_abort: {ppl_ratio: 3.0, on: wikitext2}\n",
                             "t.yaml");
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  REQUIRE(spec->early_abort.has_value());
  CHECK(spec->early_abort->ppl_ratio == 3.0);
  CHECK(spec->early_abort->on == "wikitext2");
  CHECK(spec->early_abort->hold_seconds == kDefaultEarlyAbortHoldSeconds);
  auto held = ParseSweepYaml(
      std::string(kSweep) + "early_abort: {ppl_ratio: 10, on: C4, hold_seconds: 12.5}\n", "t.yaml");
  REQUIRE(held.ok());
  CHECK(held->early_abort->on == "c4");
  CHECK(held->early_abort->hold_seconds == 12.5);
  auto none = ParseSweepYaml(kSweep, "t.yaml");
  REQUIRE(none.ok());
  CHECK_FALSE(none->early_abort.has_value());
}

TEST_CASE("A malformed early_abort rule is an error naming the key and line:column") {
  CHECK(ParseError(std::string(kSweep) + "early_abort: {ppl_ratio: 3, on: wikitext2, hold: 5}\n") ==
        "t.yaml:4:44: early_abort.hold: unknown key (allowed: ppl_ratio, on, hold_seconds)");
  CHECK(ParseError(std::string(kSweep) + "early_abort: {on: wikitext2}\n") ==
        "t.yaml:4:14: early_abort.ppl_ratio: missing");
  CHECK(ParseError(std::string(kSweep) + "early_abort: {ppl_ratio: three, on: wikitext2}\n") ==
        "t.yaml:4:26: early_abort.ppl_ratio: expected a number, got \"three\"");
  CHECK(ParseError(std::string(kSweep) + "early_abort: {ppl_ratio: 0.5, on: wikitext2}\n") ==
        "t.yaml:4:26: early_abort.ppl_ratio: must be above 1 (the FP baseline's ppl times it), "
        "got 0.5");
  CHECK(ParseError(std::string(kSweep) + "early_abort: {ppl_ratio: 3}\n") ==
        "t.yaml:4:14: early_abort.on: missing");
  CHECK(ParseError(std::string(kSweep) + "early_abort: {ppl_ratio: 3, on: piqa}\n") ==
        "t.yaml:4:33: early_abort.on: \"piqa\" is not a perplexity task (use wikitext2 or c4)");
  CHECK(ParseError("name: t\nmodels: [/m]\ntasks: [piqa, c4]\n"
                   "early_abort: {ppl_ratio: 3, on: wikitext2}\n") ==
        "t.yaml:4:33: early_abort.on: \"wikitext2\" is not one of the sweep's tasks");
  CHECK(ParseError(std::string(kSweep) +
                   "early_abort: {ppl_ratio: 3, on: wikitext2, hold_seconds: -1}\n") ==
        "t.yaml:4:58: early_abort.hold_seconds: must be at least 0");
  CHECK(ParseError(std::string(kSweep) + "early_abort: 3\n") ==
        "t.yaml:4:14: early_abort: expected a mapping");
}

TEST_CASE("The rule round trips through the JSON stored with the sweep") {
  EarlyAbortRule r = Rule(2.5, "c4");
  r.hold_seconds = 7;
  auto back = EarlyAbortRuleFromJson(EarlyAbortRuleToJson(r));
  REQUIRE(back.ok());
  CHECK(back->ppl_ratio == 2.5);
  CHECK(back->on == "c4");
  CHECK(back->hold_seconds == 7);
  CHECK(DescribeRule(r) == "early_abort: {ppl_ratio: 2.5, on: c4, hold_seconds: 7}");
  CHECK(DescribeRule(Rule()) == "early_abort: {ppl_ratio: 3, on: wikitext2}");
  CHECK(EarlyAbortRuleFromJson("{\"on\": \"c4\"}").status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE(
    "A quantized job's baseline key is the FP job of the same model, task, settings and run tag") {
  const std::string tag = GENERATE(std::string(), std::string("run_tag: v2\n"));
  auto spec = ParseSweepYaml(
      "name: t\n" + tag + "models: [models/demo]\nmethods: [{method: rtn, wbits: 4}]\n"
      "tasks: [{task: wikitext2, limit: 8}, piqa]\neval: {seqlen: 128}\n",
      "t.yaml");
  REQUIRE(spec.ok());
  ExpandOptions o;
  o.model_root = testing::SourceDir();
  auto e = ExpandSweep(*spec, o);
  INFO(e.status().ToString());
  REQUIRE(e.ok());
  std::map<std::string, std::string> fp_by_task;
  for (const JobSpec& j : e->jobs) {
    if (j.quant.method == "fp") {
      CHECK(BaselineJobKey(j).empty());
      fp_by_task[j.eval.task] = j.JobKey();
    }
  }
  REQUIRE(fp_by_task.size() == 2);
  for (const JobSpec& j : e->jobs) {
    if (j.quant.method != "fp") CHECK(BaselineJobKey(j) == fp_by_task.at(j.eval.task));
  }
}

TEST_CASE("Only quantized jobs on other tasks than the rule's are held") {
  JobSpec q;
  q.quant.method = "rtn";
  q.eval.task = "piqa";
  CHECK(HeldByRule(Rule(), q, true));
  CHECK_FALSE(HeldByRule(Rule(), q, false));
  q.eval.task = "wikitext2";
  CHECK_FALSE(HeldByRule(Rule(), q, true));
  JobSpec fp;
  fp.eval.task = "piqa";
  CHECK_FALSE(HeldByRule(Rule(), fp, true));
}

TEST_CASE("A ppl over ratio x FP exceeds with a reason naming the numbers and the rule") {
  CHECK(ExceedsReason(Rule(), 965.3, 6.3) ==
        "early abort: wikitext2 ppl 965.3 > 3 x FP 6.3 = 18.9 "
        "(early_abort: {ppl_ratio: 3, on: wikitext2})");
  CHECK(ExceedsReason(Rule(), 18.9, 6.3).empty());  // at the limit: not over it
  CHECK(ExceedsReason(Rule(), 7.1, 6.3).empty());
  CHECK(ExceedsReason(Rule(), 965.3, std::nullopt).empty());  // no baseline: nothing to compare
}

TEST_CASE("A diverged ppl (inf or NaN) exceeds any rule, with or without a baseline") {
  CHECK(ExceedsReason(Rule(), kInf, 6.3) ==
        "early abort: wikitext2 ppl is inf (diverged), which exceeds any ratio of FP 6.3 "
        "(early_abort: {ppl_ratio: 3, on: wikitext2})");
  CHECK_FALSE(ExceedsReason(Rule(), std::nan(""), std::nullopt).empty());
}

TEST_CASE("An exceeding artifact skips its pending jobs on other tasks, never its on job") {
  const auto actions = PlanEarlyAbort({Measured(965.3), Job(2, "piqa", JobState::kPending),
                                       Job(3, "c4", JobState::kPending),
                                       Job(4, "arc_easy", JobState::kLeased),
                                       Job(5, "wikitext2", JobState::kPending)});
  REQUIRE(actions.size() == 2);
  CHECK(actions[0].job_id == 2);
  CHECK(actions[0].kind == EarlyAbortAction::kSkip);
  CHECK_THAT(actions[0].reason, Catch::StartsWith("early abort: wikitext2 ppl 965.3 > 3 x FP"));
  CHECK(actions[1].job_id == 3);
  CHECK(actions[1].kind == EarlyAbortAction::kSkip);
}

TEST_CASE("An artifact under the ratio releases its held jobs") {
  const auto actions = PlanEarlyAbort({Measured(7.0), Job(2, "piqa", JobState::kPending)});
  REQUIRE(actions.size() == 1);
  CHECK(actions[0].kind == EarlyAbortAction::kRelease);
}

TEST_CASE("Each job follows its own sweep's rule: a looser one or none keeps it") {
  const auto actions =
      PlanEarlyAbort({Measured(40.0), Job(2, "piqa", JobState::kPending, Rule(3)),
                      Job(3, "c4", JobState::kPending, Rule(10)),
                      Job(4, "boolq", JobState::kPending, std::nullopt)});
  REQUIRE(actions.size() == 2);
  CHECK(actions[0].job_id == 2);
  CHECK(actions[0].kind == EarlyAbortAction::kSkip);
  CHECK(actions[1].job_id == 3);
  CHECK(actions[1].kind == EarlyAbortAction::kRelease);
}

TEST_CASE("Held jobs wait while the on result or its baseline is still to come") {
  ArtifactJob running = Job(1, "wikitext2", JobState::kLeased);
  CHECK(PlanEarlyAbort({running, Job(2, "piqa", JobState::kPending)}).empty());
  ArtifactJob no_fp = Measured(40.0, std::nullopt);
  no_fp.baseline_state = JobState::kPending;
  CHECK(PlanEarlyAbort({no_fp, Job(2, "piqa", JobState::kPending)}).empty());
  // The baseline ended without a ppl (or never existed): nothing can decide, the hold ends.
  no_fp.baseline_state = JobState::kFailed;
  auto released = PlanEarlyAbort({no_fp, Job(2, "piqa", JobState::kPending)});
  REQUIRE(released.size() == 1);
  CHECK(released[0].kind == EarlyAbortAction::kRelease);
  // The on job failed (not diverged) or was canceled: released too.
  ArtifactJob failed = Job(1, "wikitext2", JobState::kFailed);
  released = PlanEarlyAbort({failed, Job(2, "piqa", JobState::kPending)});
  REQUIRE(released.size() == 1);
  CHECK(released[0].kind == EarlyAbortAction::kRelease);
}

TEST_CASE("A diverged on job skips the artifact's jobs even before its baseline has a ppl") {
  ArtifactJob diverged = Job(1, "wikitext2", JobState::kFailed);
  diverged.ppl = kInf;
  diverged.baseline_state = JobState::kPending;
  const auto actions = PlanEarlyAbort({diverged, Job(2, "piqa", JobState::kPending)});
  REQUIRE(actions.size() == 1);
  CHECK(actions[0].kind == EarlyAbortAction::kSkip);
  CHECK_THAT(actions[0].reason, Catch::Contains("ppl is inf (diverged)"));
}

TEST_CASE("A job shared by several sweeps is skipped only when every one of them would skip it") {
  auto shared = [](std::vector<EarlyAbortRule> rules, bool unruled) {
    ArtifactJob j = Job(2, "piqa", JobState::kPending);
    j.rules = std::move(rules);
    j.unruled = unruled;
    return j;
  };
  // ppl 40 against FP 6.3 (x6.3): a x3 rule exceeds, a x10 one does not.
  auto one = [](const std::vector<EarlyAbortAction>& a) {
    REQUIRE(a.size() == 1);
    return a[0];
  };
  const EarlyAbortAction strict = one(PlanEarlyAbort({Measured(40.0), shared({Rule(3)}, false)}));
  CHECK(strict.kind == EarlyAbortAction::kSkip);
  // A second sweep without a rule, or with a looser one, asks for it too: it runs.
  CHECK(one(PlanEarlyAbort({Measured(40.0), shared({Rule(3)}, true)})).kind ==
        EarlyAbortAction::kRelease);
  CHECK(one(PlanEarlyAbort({Measured(40.0), shared({Rule(3), Rule(10)}, false)})).kind ==
        EarlyAbortAction::kRelease);
  // Both rules exceed: skipped, with the loosest rule's reason.
  const EarlyAbortAction both =
      one(PlanEarlyAbort({Measured(400.0), shared({Rule(3), Rule(10)}, false)}));
  CHECK(both.kind == EarlyAbortAction::kSkip);
  CHECK_THAT(both.reason, Catch::Contains("> 10 x FP"));
  // One rule exceeds while the other's `on` result (c4) is still to come: it waits.
  ArtifactJob c4 = Job(3, "c4", JobState::kPending, Rule(3, "c4"));
  CHECK(PlanEarlyAbort({Measured(400.0), c4, shared({Rule(3), Rule(3, "c4")}, false)}).size() ==
        0);
  // A sweep whose rule is decided on the job's own task needs the job: it is released.
  CHECK(one(PlanEarlyAbort({Measured(400.0), shared({Rule(3), Rule(3, "piqa")}, false)})).kind ==
        EarlyAbortAction::kRelease);
}
