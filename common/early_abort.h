// Early abort of diverged branches: a sweep's rule `early_abort: {ppl_ratio: 3.0, on: wikitext2}`
// skips the other jobs (accuracy tasks, C4, ...) of a quantized artifact whose perplexity on the
// `on` task exceeds ppl_ratio x the unquantized baseline's perplexity of the same model under the
// same evaluation settings. A diverged artifact (ppl inf or NaN, common/diverged.h) exceeds any
// rule. While the `on` result is not known the artifact's other jobs are held back (not leased)
// for at most hold_seconds, so that the perplexity job runs first.
//
// This file is the rule and the decision, pure functions of plain values; the store
// (store/early_abort.cc) reads the jobs of one artifact, asks PlanEarlyAbort and applies its
// answer (SKIPPED with the reason, or the hold released). Thread-compatible.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/job_spec.h"
#include "common/job_state.h"
#include "common/status.h"

namespace bitsweep {

inline constexpr double kDefaultEarlyAbortHoldSeconds = 300;

struct EarlyAbortRule {
  double ppl_ratio = 0;  // > 1
  std::string on;        // a perplexity task of the sweep (wikitext2, c4)
  double hold_seconds = kDefaultEarlyAbortHoldSeconds;  // >= 0
};

// `early_abort: {ppl_ratio: 3, on: wikitext2}` (hold_seconds only when not the default).
std::string DescribeRule(const EarlyAbortRule& rule);

// The rule as a JSON object {"ppl_ratio", "on", "hold_seconds"} (stored with the sweep), and
// back; INVALID_ARGUMENT naming the field for anything else.
std::string EarlyAbortRuleToJson(const EarlyAbortRule& rule);
StatusOr<EarlyAbortRule> EarlyAbortRuleFromJson(const std::string& json);

// The job key of the unquantized baseline of `spec`'s model on `spec`'s task with the same
// evaluation settings and run tag; "" when `spec` is that baseline (method fp). REQUIRES:
// normalised spec.
std::string BaselineJobKey(const JobSpec& spec);

// Whether a job of a sweep with `rule` is held back at submission until its artifact's `on`
// result arrives: a quantized job on another task than `on`, when the sweep also asks for the
// `on` task (else there is nothing to wait for).
bool HeldByRule(const EarlyAbortRule& rule, const JobSpec& spec, bool sweep_has_on_task);

// Whether `ppl` (NaN or inf: diverged) exceeds the rule against the baseline's `baseline_ppl`
// (nullopt: the baseline is not known; then only a diverged ppl exceeds). The reason names the
// numbers and the rule, e.g. "early abort: wikitext2 ppl 965.3 > 3 x FP 6.312 = 18.94
// (early_abort: {ppl_ratio: 3, on: wikitext2})"; "" when it does not exceed.
std::string ExceedsReason(const EarlyAbortRule& rule, double ppl,
                          std::optional<double> baseline_ppl);

// One job of an artifact as the store sees it.
struct ArtifactJob {
  int64_t id = 0;
  JobState state = JobState::kPending;
  std::string task;  // eval.task
  // The rules of the sweeps that ask for the job (a job is shared by every sweep that lists
  // its key), one per sweep that has a rule; `unruled`: some sweep asks for it without one.
  std::vector<EarlyAbortRule> rules;
  bool unruled = false;
  // For a job on a perplexity task: its ppl when SUCCEEDED, or inf/NaN when it FAILED as
  // diverged (common/diverged.h); nullopt otherwise.
  std::optional<double> ppl;
  // The state of its baseline job (BaselineJobKey), nullopt when there is none, and its ppl when
  // it SUCCEEDED.
  std::optional<JobState> baseline_state;
  std::optional<double> baseline_ppl;
};

struct EarlyAbortAction {
  enum Kind { kSkip, kRelease };
  int64_t job_id = 0;
  Kind kind = kRelease;
  std::string reason;  // kSkip: the job's reason
};

// What to do with the PENDING jobs of one artifact. A job is skipped only when every sweep that
// asks for it would skip it: it has rules, none of its sweeps is without one, and the artifact's
// `on` result exceeds each rule (the reason names the loosest, the largest ratio). Its hold is
// released as soon as one of them can no longer skip it: a sweep without a rule, a rule whose
// `on` job finished under the ratio, or ended without a ppl, or whose baseline ended without
// one, or a rule whose `on` task is the job's own (an `on` job is never skipped). Otherwise it is
// left alone (an `on` result or baseline is still to come).
std::vector<EarlyAbortAction> PlanEarlyAbort(const std::vector<ArtifactJob>& jobs);

}  // namespace bitsweep
