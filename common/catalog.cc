#include "common/catalog.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace bitsweep {
namespace {

// Debian's Abseil has its own string_view type; public signatures use std::string_view.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Defaults and ranges are those of cli/quantize_command.{h,cc}, which checks the same bounds.
const MethodOption kActOrder{"act_order",
                             OptionType::kBool,
                             "false",
                             0,
                             0,
                             "",
                             "GPTQ: quantize columns by descending Hessian diagonal"};
const MethodOption kStaticGroups{"static_groups",
                                 OptionType::kBool,
                                 "false",
                                 0,
                                 0,
                                 "",
                                 "GPTQ with act_order: groups fixed up front"};
const MethodOption kTrueSequential{"true_sequential",
                                   OptionType::kBool,
                                   "true",
                                   0,
                                   0,
                                   "",
                                   "GPTQ: Hessians per {k,v,q}|{o}|{up,gate}|{down}"};
const MethodOption kPercdamp{"percdamp",
                             OptionType::kDouble,
                             "0.01",
                             0,
                             10,
                             "",
                             "GPTQ/BiLLM dampening, fraction of mean(diag H)"};
const MethodOption kBlocksize{"blocksize", OptionType::kInt,        "128", 1, 1 << 20,
                              "",          "GPTQ/BiLLM block width"};
const MethodOption kAlpha{
    "alpha", OptionType::kDouble, "0.5", 0, 1, "", "SmoothQuant migration strength"};
const MethodOption kQkvOutput{"qkv_output",
                              OptionType::kBool,
                              "false",
                              0,
                              0,
                              "",
                              "SmoothQuant: also quantize the q/k/v outputs per token"};
const MethodOption kAwqNGrid{
    "awq_n_grid", OptionType::kInt, "20", 1, 1000, "", "AWQ scale-search grid size"};
const MethodOption kAwqDuoScaling{
    "awq_duo_scaling", OptionType::kBool, "false", 0, 0, "", "AWQ: AutoAWQ's x^r / w^(1-r) scales"};
const MethodOption kAwqNoClip{
    "awq_no_clip", OptionType::kBool, "false", 0, 0, "", "AWQ: skip the clip search"};
const MethodOption kAwqMaxShrink{
    "awq_max_shrink", OptionType::kDouble, "0.5", 0, 1, "", "AWQ clip search: largest shrink"};
const MethodOption kAwqClipTokens{
    "awq_clip_tokens", OptionType::kInt, "512", 1, 1 << 30, "", "AWQ clip search: tokens sampled"};
const MethodOption kBillmSaliency{"billm_saliency",    OptionType::kChoice,   "hessian", 0, 0,
                                  "hessian|magnitude", "BiLLM salient metric"};
const MethodOption kBillmUpLim{
    "billm_up_lim", OptionType::kInt, "50", 2, 1 << 20, "", "BiLLM salient-column search limit"};
const MethodOption kReleasedCode{"released_code",
                                 OptionType::kBool,
                                 "false",
                                 0,
                                 0,
                                 "",
                                 "reproduce the study's released code (README)"};

// released_code is offered only where it changes the result (RTN, AWQ, SmoothQuant), so that a
// GPTQ artifact has one key whatever the flag says.
const std::vector<MethodInfo>& MethodTable() {
  static const std::vector<MethodInfo> table = {
      {QuantMethod::kFp,
       "fp",
       16,
       16,
       0,
       0,
       false,
       false,
       false,
       -1,
       {},
       {"", 0, 0, 0, ""},
       "unquantized baseline"},
      {QuantMethod::kRtn,
       "rtn",
       1,
       8,
       0,
       0,
       false,
       false,
       true,
       128,
       {&kReleasedCode},
       {"", 0, 0, 0, ""},
       "round-to-nearest, asymmetric min-max"},
      {QuantMethod::kGptq,
       "gptq",
       2,
       8,
       0,
       0,
       true,
       false,
       true,
       128,
       {&kActOrder, &kStaticGroups, &kTrueSequential, &kPercdamp, &kBlocksize},
       {"c4", 128, 2048, 0, "gptq-windows"},
       "GPTQ, blocked OBS updates"},
      {QuantMethod::kAwq,
       "awq",
       2,
       8,
       0,
       0,
       true,
       false,
       true,
       128,
       {&kAwqNGrid, &kAwqDuoScaling, &kAwqNoClip, &kAwqMaxShrink, &kAwqClipTokens, &kReleasedCode},
       {"c4", 128, 512, 42, "awq-blocks"},
       "activation-aware scale and clip search"},
      {QuantMethod::kSmoothQuant,
       "smoothquant",
       2,
       8,
       2,
       8,
       true,
       true,
       false,
       -1,
       {&kAlpha, &kQkvOutput, &kReleasedCode},
       {"c4", 512, 512, 42, "gptq-windows"},
       "smoothing, W per channel + A per token"},
      {QuantMethod::kBillm,
       "billm",
       1,
       1,
       0,
       0,
       true,
       false,
       false,
       -1,
       {&kPercdamp, &kBlocksize, &kBillmSaliency, &kBillmUpLim},
       {"c4", 128, 2048, 0, "gptq-windows"},
       "residual binarization of salient columns"},
  };
  return table;
}

const std::vector<TaskInfo>& TaskTable() {
  static const std::vector<TaskInfo> table = {
      {"wikitext2", TaskKind::kPerplexity, {"ppl"}, 0, "WikiText-2 test perplexity"},
      {"c4", TaskKind::kPerplexity, {"ppl"}, 0, "C4 validation perplexity (256 segments)"},
      {"piqa", TaskKind::kMultipleChoice, {"acc", "acc_norm"}, 0, "PIQA, zero-shot"},
      {"arc_easy", TaskKind::kMultipleChoice, {"acc", "acc_norm"}, 0, "ARC-Easy, zero-shot"},
      {"arc_challenge",
       TaskKind::kMultipleChoice,
       {"acc", "acc_norm"},
       0,
       "ARC-Challenge, zero-shot"},
      {"hellaswag", TaskKind::kMultipleChoice, {"acc", "acc_norm"}, 0, "HellaSwag, zero-shot"},
      {"winogrande", TaskKind::kMultipleChoice, {"acc"}, 0, "WinoGrande, zero-shot"},
      {"boolq", TaskKind::kMultipleChoice, {"acc"}, 0, "BoolQ, zero-shot"},
      {"mmlu", TaskKind::kKShot, {"acc"}, 5, "MMLU, k-shot (5 by default)"},
  };
  return table;
}

const TaskInfo& FileTask() {
  static const TaskInfo row{"file",
                            TaskKind::kMultipleChoice,
                            {"acc", "acc_norm"},
                            0,
                            "a custom multiple-choice task: a .jsonl file of {\"context\", "
                            "\"choices\", \"gold\"} lines, scored as lm-eval scores them"};
  return row;
}

std::string ShortestDouble(double v) {
  char buf[64];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

}  // namespace

const std::vector<MethodInfo>& Methods() { return MethodTable(); }
const std::vector<TaskInfo>& Tasks() { return TaskTable(); }

StatusOr<const MethodInfo*> LookupMethod(std::string_view name) {
  std::vector<std::string> names;
  for (const MethodInfo& m : MethodTable()) {
    if (name == m.name) return &m;
    names.push_back(m.name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown method \"", AV(name), "\" (known: ", absl::StrJoin(names, ", "), ")"));
}

const MethodInfo& MethodRow(QuantMethod method) {
  for (const MethodInfo& m : MethodTable()) {
    if (m.method == method) return m;
  }
  return MethodTable().front();  // unreachable: every enumerator has a row
}

bool IsTaskPath(std::string_view name) {
  const absl::string_view n = AV(name);
  return absl::EndsWith(n, ".jsonl");
}

StatusOr<const TaskInfo*> LookupTask(std::string_view name) {
  std::vector<std::string> names;
  for (const TaskInfo& t : TaskTable()) {
    if (name == t.name) return &t;
    names.push_back(t.name);
  }
  if (IsTaskPath(name)) return &FileTask();
  return absl::InvalidArgumentError(
      absl::StrCat("unknown task \"", AV(name), "\" (known: ", absl::StrJoin(names, ", "),
                   ", or a path to a .jsonl file of {context, choices, gold} lines)"));
}

const char* TaskKindName(TaskKind kind) {
  switch (kind) {
    case TaskKind::kPerplexity:
      return "perplexity";
    case TaskKind::kMultipleChoice:
      return "multiple_choice";
    case TaskKind::kKShot:
      return "k_shot";
  }
  return "?";
}

StatusOr<const MethodOption*> LookupOption(const MethodInfo& method, std::string_view name) {
  for (const MethodOption* o : method.options) {
    if (name == o->name) return o;
  }
  std::vector<std::string> owners;
  for (const MethodInfo& m : MethodTable()) {
    for (const MethodOption* o : m.options) {
      if (name == o->name) owners.push_back(m.name);
    }
  }
  std::vector<std::string> own;
  for (const MethodOption* o : method.options) own.push_back(o->name);
  const std::string accepted =
      own.empty() ? "it takes no options" : absl::StrCat("it accepts ", absl::StrJoin(own, ", "));
  if (owners.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown option \"", AV(name), "\" for ", method.name, " (", accepted, ")"));
  }
  return absl::InvalidArgumentError(absl::StrCat("option \"", AV(name), "\" applies to ",
                                                 absl::StrJoin(owners, ", "), ", not ", method.name,
                                                 " (", accepted, ")"));
}

StatusOr<std::string> NormalizeOptionValue(const MethodOption& option, std::string_view value) {
  const std::string v = absl::AsciiStrToLower(absl::StripAsciiWhitespace(AV(value)));
  auto bad = [&](absl::string_view expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("option ", option.name, ": expected ", expected, ", got \"", AV(value), "\""));
  };
  switch (option.type) {
    case OptionType::kBool:
      if (v == "true" || v == "yes" || v == "on" || v == "1") return std::string("true");
      if (v == "false" || v == "no" || v == "off" || v == "0") return std::string("false");
      return bad("true or false");
    case OptionType::kInt: {
      int64_t x = 0;
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
      if (ec != std::errc() || end != v.data() + v.size() || v.empty()) {
        return bad("an integer");
      }
      if (x < option.min || x > option.max) {
        return bad(absl::StrCat("an integer in ", static_cast<int64_t>(option.min), "..",
                                static_cast<int64_t>(option.max)));
      }
      return absl::StrCat(x);
    }
    case OptionType::kDouble: {
      char* end = nullptr;
      errno = 0;
      const double x = std::strtod(v.c_str(), &end);
      if (v.empty() || end != v.c_str() + v.size() || errno != 0 || !std::isfinite(x)) {
        return bad("a number");
      }
      if (x < option.min || x > option.max) {
        return bad(absl::StrCat("a number in ", ShortestDouble(option.min), "..",
                                ShortestDouble(option.max)));
      }
      return ShortestDouble(x == 0 ? 0.0 : x);  // -0 and 0 are one value
    }
    case OptionType::kChoice:
      for (absl::string_view c : absl::StrSplit(option.choices, '|')) {
        if (v == c) return v;
      }
      return bad(absl::StrCat("one of ", absl::StrJoin(absl::StrSplit(option.choices, '|'), ", ")));
  }
  return bad("a value");
}

std::string BitsRange(int min_bits, int max_bits) {
  return min_bits == max_bits ? absl::StrCat(min_bits) : absl::StrCat(min_bits, "..", max_bits);
}

}  // namespace bitsweep
