#include "common/early_abort.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace bitsweep {
namespace {

// A number as the reasons print it: 4 significant digits ("965.3", "6.312", "inf", "nan").
std::string Num(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

}  // namespace

std::string DescribeRule(const EarlyAbortRule& rule) {
  std::string out = "early_abort: {ppl_ratio: " + Num(rule.ppl_ratio) + ", on: " + rule.on;
  if (rule.hold_seconds != kDefaultEarlyAbortHoldSeconds) {
    out += ", hold_seconds: " + Num(rule.hold_seconds);
  }
  return out + "}";
}

std::string EarlyAbortRuleToJson(const EarlyAbortRule& rule) {
  return nlohmann::json{{"ppl_ratio", rule.ppl_ratio},
                        {"on", rule.on},
                        {"hold_seconds", rule.hold_seconds}}
      .dump();
}

StatusOr<EarlyAbortRule> EarlyAbortRuleFromJson(const std::string& json) {
  const nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return absl::InvalidArgumentError("early_abort: expected a JSON object");
  EarlyAbortRule rule;
  const auto ratio = j.find("ppl_ratio");
  if (ratio == j.end() || !ratio->is_number() || !(ratio->get<double>() > 1)) {
    return absl::InvalidArgumentError("early_abort.ppl_ratio: expected a number above 1");
  }
  rule.ppl_ratio = ratio->get<double>();
  const auto on = j.find("on");
  if (on == j.end() || !on->is_string() || on->get<std::string>().empty()) {
    return absl::InvalidArgumentError("early_abort.on: expected a task name");
  }
  rule.on = on->get<std::string>();
  if (const auto hold = j.find("hold_seconds"); hold != j.end()) {
    if (!hold->is_number() || !(hold->get<double>() >= 0)) {
      return absl::InvalidArgumentError("early_abort.hold_seconds: expected a number >= 0");
    }
    rule.hold_seconds = hold->get<double>();
  }
  return rule;
}

std::string BaselineJobKey(const JobSpec& spec) {
  if (spec.quant.method == QuantConfig().method) return "";
  JobSpec baseline;
  baseline.model = spec.model;
  baseline.run_tag = spec.run_tag;  // a tagged run compares with its own baseline
  baseline.eval = spec.eval;
  auto normalized = NormalizeJobSpec(baseline);
  return normalized.ok() ? normalized->JobKey() : "";
}

bool HeldByRule(const EarlyAbortRule& rule, const JobSpec& spec, bool sweep_has_on_task) {
  return sweep_has_on_task && spec.quant.method != QuantConfig().method &&
         spec.eval.task != rule.on;
}

std::string ExceedsReason(const EarlyAbortRule& rule, double ppl,
                          std::optional<double> baseline_ppl) {
  const std::string rule_text = " (" + DescribeRule(rule) + ")";
  if (!std::isfinite(ppl)) {
    return "early abort: " + rule.on + " ppl is " + Num(ppl) +
           " (diverged), which exceeds any ratio" +
           (baseline_ppl ? " of FP " + Num(*baseline_ppl) : std::string()) + rule_text;
  }
  if (!baseline_ppl || !std::isfinite(*baseline_ppl)) return "";
  const double limit = rule.ppl_ratio * *baseline_ppl;
  if (!(ppl > limit)) return "";
  return "early abort: " + rule.on + " ppl " + Num(ppl) + " > " + Num(rule.ppl_ratio) +
         " x FP " + Num(*baseline_ppl) + " = " + Num(limit) + rule_text;
}

namespace {

// What one rule says of an artifact: its `on` result exceeds it (with the reason), it cannot
// any more, or it may still (an `on` result or its baseline is to come, or the artifact has no
// `on` job: the hold then ends by itself).
enum class Verdict { kExceeds, kCannot, kUndecided };

Verdict Judge(const EarlyAbortRule& rule, const std::vector<ArtifactJob>& jobs,
              std::string* reason) {
  bool waiting = false;  // some `on` job or its baseline may still decide
  bool any_on = false;
  for (const ArtifactJob& on : jobs) {
    if (on.task != rule.on) continue;
    any_on = true;
    if (!on.ppl) {
      waiting = waiting || !IsTerminal(on.state);
      continue;
    }
    const bool baseline_done = on.baseline_state == JobState::kSucceeded && on.baseline_ppl;
    *reason = ExceedsReason(rule, *on.ppl, baseline_done ? on.baseline_ppl : std::nullopt);
    if (!reason->empty()) return Verdict::kExceeds;
    if (!baseline_done && on.baseline_state && !IsTerminal(*on.baseline_state)) waiting = true;
  }
  return waiting || !any_on ? Verdict::kUndecided : Verdict::kCannot;
}

}  // namespace

std::vector<EarlyAbortAction> PlanEarlyAbort(const std::vector<ArtifactJob>& jobs) {
  std::vector<EarlyAbortAction> actions;
  for (const ArtifactJob& job : jobs) {
    if (job.state != JobState::kPending || job.rules.empty()) continue;
    bool cannot = job.unruled;
    bool undecided = false;
    std::string skip;  // the reason of the loosest rule that exceeds
    double loosest = 0;
    for (const EarlyAbortRule& rule : job.rules) {
      if (cannot) break;
      if (job.task == rule.on) {
        cannot = true;
        break;
      }
      std::string reason;
      const Verdict v = Judge(rule, jobs, &reason);
      cannot = v == Verdict::kCannot;
      undecided = undecided || v == Verdict::kUndecided;
      if (v == Verdict::kExceeds && (skip.empty() || rule.ppl_ratio > loosest)) {
        skip = std::move(reason);
        loosest = rule.ppl_ratio;
      }
    }
    if (cannot) {
      // Only a job some rule could have held (a job on every rule's `on` task never is).
      const bool held = std::any_of(job.rules.begin(), job.rules.end(),
                                    [&job](const EarlyAbortRule& r) { return r.on != job.task; });
      if (held) actions.push_back({job.id, EarlyAbortAction::kRelease, ""});
    } else if (!undecided) {
      actions.push_back({job.id, EarlyAbortAction::kSkip, std::move(skip)});
    }
  }
  return actions;
}

}  // namespace bitsweep
