// A diverged model: a job whose metric came out NaN or infinite fails for good with a reason of
// one fixed form, "<metric> is <value>: the quantized model diverges" (<value> "inf", "-inf",
// "nan", or "not a finite number" when the worker could not tell which). The worker writes it
// (worker/job_process.cc) and the results query reads it back (server/results_query.cc), so
// that `bitsweep results` shows the diverged cell as the study's tables do: "inf" (or "nan").
// Pure, header-only.
#pragma once

#include <cmath>
#include <limits>
#include <optional>
#include <string>

namespace bitsweep {

inline constexpr char kDivergedSuffix[] = ": the quantized model diverges";

// "ppl is inf: the quantized model diverges" for a non-finite `value` of `metric`.
inline std::string DivergedReason(const std::string& metric, double value) {
  const char* what = std::isnan(value) ? "nan" : value > 0 ? "inf" : "-inf";
  return metric + " is " + what + kDivergedSuffix;
}
// The same when the value is unknown beyond "not a number" (JSON null).
inline std::string DivergedReasonUnknown(const std::string& metric) {
  return metric + " is not a finite number" + kDivergedSuffix;
}

struct DivergedMetric {
  std::string metric;
  double value = 0;  // +inf, -inf or NaN (NaN also for "not a finite number")
};

// The metric and value a DivergedReason names; nullopt for any other reason.
inline std::optional<DivergedMetric> ParseDivergedReason(const std::string& reason) {
  const std::string suffix = kDivergedSuffix;
  if (reason.size() <= suffix.size() ||
      reason.compare(reason.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return std::nullopt;
  }
  const std::string head = reason.substr(0, reason.size() - suffix.size());
  const auto is = head.find(" is ");
  if (is == std::string::npos || is == 0) return std::nullopt;
  const std::string what = head.substr(is + 4);
  DivergedMetric d;
  d.metric = head.substr(0, is);
  if (d.metric.find(' ') != std::string::npos) return std::nullopt;
  if (what == "inf") {
    d.value = std::numeric_limits<double>::infinity();
  } else if (what == "-inf") {
    d.value = -std::numeric_limits<double>::infinity();
  } else if (what == "nan" || what == "not a finite number") {
    d.value = std::numeric_limits<double>::quiet_NaN();
  } else {
    return std::nullopt;
  }
  return d;
}

}  // namespace bitsweep
