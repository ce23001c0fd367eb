#include "common/catalog.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace bitsweep {
namespace {

// Debian's Abseil has its own string_view type; public signatures use std::string_view.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// ---- options ------------------------------------------------------------------------------

MethodOption Flag(const char* name, bool default_value, const char* help,
                  const char* requires_option = "") {
  MethodOption o;
  o.name = name;
  o.type = OptionType::kBool;
  o.default_value = default_value ? "true" : "false";
  o.help = help;
  o.requires_option = requires_option;
  return o;
}

MethodOption Number(const char* name, OptionType type, const char* default_value, double min,
                    double max, const char* help) {
  MethodOption o;
  o.name = name;
  o.type = type;
  o.default_value = default_value;
  o.min = min;
  o.max = max;
  o.help = help;
  return o;
}

MethodOption Choice(const char* name, const char* choices, const char* default_value,
                    const char* help) {
  MethodOption o;
  o.name = name;
  o.type = OptionType::kChoice;
  o.choices = choices;
  o.default_value = default_value;
  o.help = help;
  return o;
}

constexpr OptionType kInt = OptionType::kInt;
constexpr OptionType kDouble = OptionType::kDouble;

const MethodOption kActOrder =
    Flag("act_order", false, "GPTQ: quantize columns by descending Hessian diagonal");
const MethodOption kStaticGroups =
    Flag("static_groups", false, "GPTQ with act_order: groups fixed up front", "act_order");
const MethodOption kTrueSequential =
    Flag("true_sequential", true,
         "GPTQ: Hessians per {k,v,q}|{o}|{up,gate}|{down} (off: one Hessian pass per layer)");
const MethodOption kPercdamp =
    Number("percdamp", kDouble, "0.01", 0, 10, "GPTQ/BiLLM dampening, fraction of mean(diag H)");
const MethodOption kBlocksize =
    Number("blocksize", kInt, "128", 1, 1 << 20, "GPTQ/BiLLM block width");
const MethodOption kAlpha = Number("alpha", kDouble, "0.5", 0, 1, "SmoothQuant migration strength");
const MethodOption kQkvOutput =
    Flag("qkv_output", false, "SmoothQuant: also quantize the q/k/v outputs per token");
const MethodOption kAwqNGrid =
    Number("awq_n_grid", kInt, "20", 1, 1000, "AWQ scale-search grid size");
const MethodOption kAwqDuoScaling =
    Flag("awq_duo_scaling", false, "AWQ: AutoAWQ's x^r / w^(1-r) scales");
const MethodOption kAwqNoClip = Flag("awq_no_clip", false, "AWQ: skip the clip search");
const MethodOption kAwqMaxShrink =
    Number("awq_max_shrink", kDouble, "0.5", 0, 1, "AWQ clip search: largest shrink");
const MethodOption kAwqClipTokens =
    Number("awq_clip_tokens", kInt, "512", 1, 1 << 30, "AWQ clip search: tokens sampled");
const MethodOption kBillmSaliency =
    Choice("billm_saliency", "hessian|magnitude", "hessian", "BiLLM salient metric");
const MethodOption kBillmUpLim =
    Number("billm_up_lim", kInt, "50", 2, 1 << 20, "BiLLM salient-column search limit");
const MethodOption kReleasedCode =
    Flag("released_code", false,
         "reproduce the study's released code (docs/methods.md#released-code)");

// ---- methods --------------------------------------------------------------------------------

// A method row written field by field by name: Row("gptq", ...).WeightBits(2, 8, 4)...
class Row {
 public:
  Row(const char* name, const char* description) {
    m_.name = name;
    m_.description = description;
  }
  Row& Baseline() {
    m_.baseline = true;
    m_.min_wbits = m_.max_wbits = m_.default_wbits = 16;
    m_.grid = "none";
    return *this;
  }
  Row& WeightBits(int min, int max, int default_bits, const char* note = "") {
    m_.min_wbits = min;
    m_.max_wbits = max;
    m_.default_wbits = default_bits;
    m_.wbits_note = note;
    return *this;
  }
  Row& ActivationBits(int min, int max, int default_bits) {
    m_.takes_abits = true;
    m_.min_abits = min;
    m_.max_abits = max;
    m_.default_abits = default_bits;
    return *this;
  }
  Row& Groups(int default_group_size) {
    m_.group_size_applies = true;
    m_.default_group_size = default_group_size;
    return *this;
  }
  Row& NoGroups(const char* why) {
    m_.group_note = why;
    return *this;
  }
  Row& PerChannelWhen(const char* option) {
    m_.per_channel_option = option;
    return *this;
  }
  Row& Calibration(const char* source, int64_t nsamples, int64_t seqlen, int64_t seed,
                   const char* procedure) {
    m_.needs_calibration = true;
    m_.calibration.source = source;
    m_.calibration.nsamples = nsamples;
    m_.calibration.seqlen = seqlen;
    m_.calibration.seed = seed;
    m_.calibration.procedure = procedure;
    return *this;
  }
  Row& NoCalibrationWhen(const char* option) {
    m_.no_calibration_option = option;
    return *this;
  }
  Row& Options(std::vector<const MethodOption*> options) {
    m_.options = std::move(options);
    return *this;
  }
  Row& Grid(const char* grid) {
    m_.grid = grid;
    return *this;
  }
  Row& Symmetric() {
    m_.symmetric = true;
    return *this;
  }
  Row& Packable() {
    m_.packable = true;
    return *this;
  }
  Row& Overrides(bool bits, bool keep_fp, const char* why) {
    m_.override_bits = bits;
    m_.override_keep_fp = keep_fp;
    m_.override_note = why;
    return *this;
  }
  operator MethodInfo() const { return m_; }

 private:
  MethodInfo m_;
};

// One row per method, its fields grouped by topic (so clang-format is off).
// clang-format off
const std::vector<MethodInfo>& MethodTable() {
  static const std::vector<MethodInfo> table = {
      Row("fp", "unquantized baseline").Baseline(),
      // released_code is offered only where it changes the result (RTN, AWQ, SmoothQuant), so
      // that a GPTQ artifact has one key whatever the flag says. RTN's released code ignores
      // the group size.
      Row("rtn", "round-to-nearest, asymmetric min-max")
          .WeightBits(1, 8, 4).Groups(128).PerChannelWhen("released_code")
          .Options({&kReleasedCode})
          .Grid("asymmetric min-max with zero in range").Packable(),
      Row("gptq", "GPTQ, blocked OBS updates")
          .WeightBits(2, 8, 4).Groups(128)
          .Calibration("c4", 128, 2048, 0, "gptq-windows")
          .Options({&kActOrder, &kStaticGroups, &kTrueSequential, &kPercdamp, &kBlocksize})
          .Grid("asymmetric min-max with zero in range").Packable(),
      Row("awq", "activation-aware scale and clip search")
          .WeightBits(2, 8, 4).Groups(128)
          .Calibration("c4", 128, 512, 42, "awq-blocks")
          .Options({&kAwqNGrid, &kAwqDuoScaling, &kAwqNoClip, &kAwqMaxShrink, &kAwqClipTokens,
                    &kReleasedCode})
          .Grid("asymmetric min-max (AWQ)").Packable(),
      // SmoothQuant's act scales upstream use 512 Pile-val samples of 512 tokens; Pile is not
      // part of the study's data, so C4 windows stand in. Its released code does no smoothing.
      Row("smoothquant", "smoothing, W per channel + A per token")
          .WeightBits(2, 8, 4).ActivationBits(2, 8, 8).NoGroups("quantizes weights per channel")
          .Calibration("c4", 512, 512, 42, "gptq-windows").NoCalibrationWhen("released_code")
          .Options({&kAlpha, &kQkvOutput, &kReleasedCode})
          .Grid("symmetric abs-max per channel (SmoothQuant)").Symmetric()
          .Overrides(true, false, "smoothquant quantizes every linear's input activations "
                     "(abits), so no linear can stay in full precision"),
      Row("billm", "residual binarization of salient columns")
          .WeightBits(1, 1, 1, "binarizes weights")
          .NoGroups("works in blocksize-column blocks (option blocksize)")
          .Calibration("c4", 128, 2048, 0, "gptq-windows")
          .Options({&kPercdamp, &kBlocksize, &kBillmSaliency, &kBillmUpLim})
          .Grid("residual binarization (BiLLM)")
          .Overrides(false, true, "billm binarises every linear (1 bit); an override may only "
                     "keep linears in full precision (wbits: 16)"),
  };
  return table;
}
// clang-format on

// ---- tasks ----------------------------------------------------------------------------------

TaskInfo Task(const char* name, TaskKind kind, std::vector<const char*> metrics,
              const char* description, const char* data_files) {
  TaskInfo t;
  t.name = name;
  t.kind = kind;
  t.metrics = std::move(metrics);
  t.description = description;
  t.data_files = data_files;
  return t;
}

const std::vector<TaskInfo>& TaskTable() {
  using K = TaskKind;
  static const std::vector<TaskInfo> table = [] {
    std::vector<TaskInfo> t = {
        Task("wikitext2", K::kPerplexity, {"ppl"}, "WikiText-2 test perplexity",
             "wikitext2/wiki.test.raw"),
        Task("c4", K::kPerplexity, {"ppl"}, "C4 validation perplexity (256 segments)",
             "c4/c4-validation.*.json"),
        Task("piqa", K::kMultipleChoice, {"acc", "acc_norm"}, "PIQA, zero-shot",
             "piqa/valid.jsonl + piqa/valid-labels.lst"),
        Task("arc_easy", K::kMultipleChoice, {"acc", "acc_norm"}, "ARC-Easy, zero-shot",
             "arc/ARC-Easy-Test.jsonl"),
        Task("arc_challenge", K::kMultipleChoice, {"acc", "acc_norm"}, "ARC-Challenge, zero-shot",
             "arc/ARC-Challenge-Test.jsonl"),
        Task("hellaswag", K::kMultipleChoice, {"acc", "acc_norm"}, "HellaSwag, zero-shot",
             "hellaswag/hellaswag_val.jsonl or hellaswag/hellaswag_val_full.txt"),
        Task("winogrande", K::kMultipleChoice, {"acc"}, "WinoGrande, zero-shot",
             "winogrande/dev.jsonl"),
        Task("boolq", K::kMultipleChoice, {"acc"}, "BoolQ, zero-shot", "boolq/val.jsonl"),
        Task("mmlu", K::kKShot, {"acc"}, "MMLU, k-shot (5 by default)", "mmlu/{dev,test}/*.csv"),
    };
    t.back().default_num_fewshot = 5;
    return t;
  }();
  return table;
}

const TaskInfo& FileTask() {
  static const TaskInfo row =
      Task("file", TaskKind::kMultipleChoice, {"acc", "acc_norm"},
           "a custom multiple-choice task: a .jsonl file of {\"context\", \"choices\", \"gold\"} "
           "lines, scored as lm-eval scores them",
           "the .jsonl file itself");
  return row;
}

// Edits (insertions, deletions, substitutions, swaps of neighbours) between `a` and `b`,
// ignoring ASCII case: the optimal-string-alignment distance.
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  auto lower = [](char c) { return absl::ascii_tolower(static_cast<unsigned char>(c)); };
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) &&
          lower(a[i - 2]) == lower(b[j - 1])) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// ": did you mean \"gptq\"?" for the closest of `names` within a typo's reach of `name` (at most
// 2 edits, and fewer than half its letters, so "x" suggests nothing), else "".
std::string DidYouMean(std::string_view name, const std::vector<std::string>& names) {
  const std::string* best = nullptr;
  size_t best_distance = 0;
  for (const std::string& candidate : names) {
    const size_t d = EditDistance(name, candidate);
    if (best == nullptr || d < best_distance) {
      best = &candidate;
      best_distance = d;
    }
  }
  if (best == nullptr || best_distance > 2 || 2 * best_distance >= name.size()) return "";
  return absl::StrCat(": did you mean \"", *best, "\"?");
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
    if (absl::EqualsIgnoreCase(AV(name), m.name)) return &m;
    names.push_back(m.name);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown method \"", AV(name), "\"",
                                                 DidYouMean(name, names),
                                                 " (known: ", absl::StrJoin(names, ", "), ")"));
}

std::vector<const MethodInfo*> QuantizationMethods() {
  std::vector<const MethodInfo*> out;
  for (const MethodInfo& m : MethodTable()) {
    if (!m.baseline) out.push_back(&m);
  }
  return out;
}

bool IsTaskPath(std::string_view name) {
  const absl::string_view n = AV(name);
  return absl::EndsWith(n, ".jsonl");
}

StatusOr<const TaskInfo*> LookupTask(std::string_view name) {
  std::vector<std::string> names;
  for (const TaskInfo& t : TaskTable()) {
    if (absl::EqualsIgnoreCase(AV(name), t.name)) return &t;
    names.push_back(t.name);
  }
  if (IsTaskPath(name)) return &FileTask();
  return absl::InvalidArgumentError(
      absl::StrCat("unknown task \"", AV(name), "\"", DidYouMean(name, names),
                   " (known: ", absl::StrJoin(names, ", "),
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

std::vector<const MethodOption*> AllOptions() {
  std::vector<const MethodOption*> out;
  for (const MethodInfo& m : MethodTable()) {
    for (const MethodOption* o : m.options) {
      if (std::find(out.begin(), out.end(), o) == out.end()) out.push_back(o);
    }
  }
  return out;
}

std::string OptionFlag(const MethodOption& option) {
  std::string flag = absl::StrReplaceAll(option.name, {{"_", "-"}});
  const bool negated =
      option.type == OptionType::kBool && option.default_value == std::string_view("true");
  return absl::StrCat(negated ? "--no-" : "--", flag);
}

std::string OptionOwners(std::string_view option) {
  std::vector<std::string> owners;
  for (const MethodInfo& m : MethodTable()) {
    for (const MethodOption* o : m.options) {
      if (option == o->name) owners.push_back(m.name);
    }
  }
  return absl::StrJoin(owners, ", ");
}

namespace {

const std::string& Present(const std::map<std::string, std::string>& options, const char* name) {
  static const std::string kEmpty;
  auto it = options.find(name);
  return it == options.end() ? kEmpty : it->second;
}

}  // namespace

bool OptionBool(const std::map<std::string, std::string>& options, const char* name) {
  return Present(options, name) == "true";
}

int64_t OptionInt(const std::map<std::string, std::string>& options, const char* name) {
  const std::string& v = Present(options, name);
  int64_t x = 0;
  std::from_chars(v.data(), v.data() + v.size(), x);
  return x;
}

double OptionDouble(const std::map<std::string, std::string>& options, const char* name) {
  return std::strtod(Present(options, name).c_str(), nullptr);
}

const std::string& OptionText(const std::map<std::string, std::string>& options, const char* name) {
  return Present(options, name);
}

namespace {

std::string OptionRange(const MethodOption& o) {
  switch (o.type) {
    case OptionType::kBool:
      return "true, false";
    case OptionType::kInt:
      return absl::StrCat(static_cast<int64_t>(o.min), "..", static_cast<int64_t>(o.max));
    case OptionType::kDouble:
      return absl::StrCat(o.min, "..", o.max);
    case OptionType::kChoice:
      return absl::StrJoin(absl::StrSplit(o.choices, '|'), ", ");
  }
  return "";
}

}  // namespace

std::string MethodOptionsMarkdown() {
  std::string out =
      "| method | weight bits | activation bits | group | calibration (source, samples x "
      "length, seed, procedure) |\n|---|---|---|---|---|\n";
  for (const MethodInfo* m : QuantizationMethods()) {
    const CalibrationDefaults& c = m->calibration;
    absl::StrAppend(&out, "| `", m->name, "` | ", BitsRange(m->min_wbits, m->max_wbits),
                    " (default ", m->default_wbits, ") | ",
                    m->takes_abits ? absl::StrCat(BitsRange(m->min_abits, m->max_abits),
                                                  " (default ", m->default_abits, ")")
                                   : std::string("none"),
                    " | ",
                    m->group_size_applies ? absl::StrCat("default ", m->default_group_size)
                                          : std::string(m->group_note),
                    " | ",
                    m->needs_calibration ? absl::StrCat(c.source, ", ", c.nsamples, " x ", c.seqlen,
                                                        ", ", c.seed, ", ", c.procedure)
                                         : std::string("none"),
                    " |\n");
  }
  absl::StrAppend(&out,
                  "\n| option | flag | methods | type | default | range | meaning |\n"
                  "|---|---|---|---|---|---|---|\n");
  for (const MethodOption* o : AllOptions()) {
    static const char* kTypes[] = {"bool", "int", "number", "choice"};
    absl::StrAppend(
        &out, "| `", o->name, "` | `", OptionFlag(*o), "` | ", OptionOwners(o->name), " | ",
        kTypes[static_cast<int>(o->type)], " | ", o->default_value, " | ", OptionRange(*o), " | ",
        absl::StrReplaceAll(o->help, {{"|", "\\|"}}),
        *o->requires_option ? absl::StrCat(" (needs ", o->requires_option, ")") : std::string(),
        " |\n");
  }
  return out;
}

std::string TasksMarkdown() {
  std::string out =
      "| task | kind | metrics | shots | data (under `--data-dir`) |\n|---|---|---|---|---|\n";
  std::vector<const TaskInfo*> rows;
  for (const TaskInfo& t : TaskTable()) rows.push_back(&t);
  rows.push_back(&FileTask());
  for (const TaskInfo* t : rows) {
    absl::StrAppend(&out, "| `", std::string_view(t->name) == "file" ? "FILE.jsonl" : t->name,
                    "` | ", TaskKindName(t->kind), " | ", absl::StrJoin(t->metrics, ", "), " | ",
                    t->default_num_fewshot, " | ", t->data_files, " |\n");
  }
  return out;
}

std::string ReadmeGeneratedSections() {
  auto section = [](const char* name, const std::string& body) {
    return absl::StrCat("<!-- BEGIN generated: ", name,
                        " (bitsweep catalog --markdown; do not edit by hand) -->\n", body,
                        "<!-- END generated: ", name, " -->\n");
  };
  return absl::StrCat(section("method options", MethodOptionsMarkdown()), "\n",
                      section("tasks", TasksMarkdown()));
}

}  // namespace bitsweep
