#include "eval/tasks.h"

#include <utf8proc.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/catalog.h"
#include "model/tokenizer.h"

namespace bitsweep::eval {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Python's str.isspace() code points.
bool IsPySpace(int32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
         c == 0x205f || c == 0x3000;
}

// Decodes UTF-8 into (code point, byte offset) pairs; invalid bytes decode as U+FFFD, one byte.
std::vector<std::pair<int32_t, size_t>> Decode(const std::string& s) {
  std::vector<std::pair<int32_t, size_t>> out;
  size_t i = 0;
  while (i < s.size()) {
    utf8proc_int32_t c = 0;
    utf8proc_ssize_t n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                                          static_cast<utf8proc_ssize_t>(s.size() - i), &c);
    if (n <= 0) {
      c = 0xfffd;
      n = 1;
    }
    out.push_back({c, i});
    i += static_cast<size_t>(n);
  }
  return out;
}

void AppendUtf8(std::string* out, int32_t c) {
  utf8proc_uint8_t buf[4];
  const utf8proc_ssize_t n = utf8proc_encode_char(c, buf);
  out->append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

std::string PyRStrip(const std::string& s) {
  auto cps = Decode(s);
  size_t end = cps.size();
  while (end > 0 && IsPySpace(cps[end - 1].first)) --end;
  return s.substr(0, end == cps.size() ? s.size() : cps[end].second);
}

std::string ReplaceAll(const std::string& s, const std::string& from, const std::string& to) {
  std::string out;
  size_t i = 0;
  while (true) {
    const size_t j = s.find(from, i);
    if (j == std::string::npos) break;
    out.append(s, i, j - i);
    out += to;
    i = j + from.size();
  }
  out.append(s, i, std::string::npos);
  return out;
}

// Reads a text file's lines (without their "\n"); NotFound names the file.
StatusOr<std::vector<std::string>> ReadLines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

// Calls fn(object, line number) for every non-blank line of a JSONL file.
Status ForEachJsonLine(const std::string& path,
                       const std::function<Status(const json&, int64_t)>& fn) {
  ASSIGN_OR_RETURN(std::vector<std::string> lines, ReadLines(path));
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find_first_not_of(" \t") == std::string::npos) continue;
    json j;
    try {
      j = json::parse(lines[i]);
    } catch (const json::exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", i + 1, ": not valid JSON (", e.what(), ")"));
    }
    if (!j.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", i + 1, ": not a JSON object"));
    }
    try {
      RETURN_IF_ERROR(fn(j, static_cast<int64_t>(i + 1)));
    } catch (const json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", i + 1, ": ", e.what()));
    }
  }
  return absl::OkStatus();
}

Status FieldError(const std::string& path, int64_t line, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ":", line, ": ", what));
}

StatusOr<std::string> StringField(const json& j, const char* key, const std::string& path,
                                  int64_t line) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) {
    return FieldError(path, line, absl::StrCat("missing string field \"", key, "\""));
  }
  return it->get<std::string>();
}

// A document whose choices go in the continuation: context + " " + choice.
ChoiceDoc ContinuationChoices(const std::string& context, std::vector<std::string> choices,
                              int64_t gold) {
  ChoiceDoc d;
  for (const auto& c : choices) {
    d.contexts.push_back(context);
    d.continuations.push_back(" " + c);
  }
  d.choices = std::move(choices);
  d.gold = gold;
  return d;
}

StatusOr<TaskData> LoadPiqa(const std::string& dir) {
  TaskData t{"piqa", dir + "/piqa/valid.jsonl", "", true, {}};
  const std::string labels_path = dir + "/piqa/valid-labels.lst";
  ASSIGN_OR_RETURN(std::vector<std::string> labels, ReadLines(labels_path));
  RETURN_IF_ERROR(ForEachJsonLine(t.source, [&](const json& j, int64_t line) -> Status {
    ASSIGN_OR_RETURN(std::string goal, StringField(j, "goal", t.source, line));
    ASSIGN_OR_RETURN(std::string sol1, StringField(j, "sol1", t.source, line));
    ASSIGN_OR_RETURN(std::string sol2, StringField(j, "sol2", t.source, line));
    const size_t k = t.docs.size();
    if (k >= labels.size()) return FieldError(labels_path, k + 1, "missing label");
    const std::string& l = labels[k];
    if (l != "0" && l != "1") return FieldError(labels_path, k + 1, "label is not 0 or 1");
    t.docs.push_back(
        ContinuationChoices("Question: " + goal + "\nAnswer:", {sol1, sol2}, l == "1" ? 1 : 0));
    return absl::OkStatus();
  }));
  return t;
}

StatusOr<TaskData> LoadArc(const std::string& name, const std::string& dir) {
  const std::string file = name == "arc_easy" ? "ARC-Easy-Test.jsonl" : "ARC-Challenge-Test.jsonl";
  TaskData t{name, dir + "/arc/" + file, "", true, {}};
  RETURN_IF_ERROR(ForEachJsonLine(t.source, [&](const json& j, int64_t line) -> Status {
    auto q = j.find("question");
    if (q == j.end() || !q->is_object()) {
      return FieldError(t.source, line, "missing object field \"question\"");
    }
    ASSIGN_OR_RETURN(std::string stem, StringField(*q, "stem", t.source, line));
    ASSIGN_OR_RETURN(std::string key, StringField(j, "answerKey", t.source, line));
    auto cs = q->find("choices");
    if (cs == q->end() || !cs->is_array() || cs->empty()) {
      return FieldError(t.source, line, "missing array field \"question.choices\"");
    }
    std::vector<std::string> texts;
    int64_t gold = -1;
    for (const json& c : *cs) {
      ASSIGN_OR_RETURN(std::string text, StringField(c, "text", t.source, line));
      ASSIGN_OR_RETURN(std::string label, StringField(c, "label", t.source, line));
      if (label == key && gold < 0) gold = static_cast<int64_t>(texts.size());
      texts.push_back(text);
    }
    if (gold < 0) {
      return FieldError(t.source, line, "answerKey \"" + key + "\" is not a choice label");
    }
    t.docs.push_back(ContinuationChoices("Question: " + stem + "\nAnswer:", texts, gold));
    return absl::OkStatus();
  }));
  return t;
}

StatusOr<int64_t> IntLike(const json& v) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos && s.size() < 10) {
      return std::stoll(s);
    }
  }
  return absl::InvalidArgumentError("not an integer");
}

StatusOr<TaskData> LoadHellaswag(const std::string& dir) {
  const std::string jsonl = dir + "/hellaswag/hellaswag_val.jsonl";
  if (fs::exists(jsonl)) {
    TaskData t{"hellaswag", jsonl, "", true, {}};
    RETURN_IF_ERROR(ForEachJsonLine(jsonl, [&](const json& j, int64_t line) -> Status {
      ASSIGN_OR_RETURN(std::string label, StringField(j, "activity_label", jsonl, line));
      ASSIGN_OR_RETURN(std::string ctx_a, StringField(j, "ctx_a", jsonl, line));
      ASSIGN_OR_RETURN(std::string ctx_b, StringField(j, "ctx_b", jsonl, line));
      auto e = j.find("endings");
      if (e == j.end() || !e->is_array() || e->empty()) {
        return FieldError(jsonl, line, "missing array field \"endings\"");
      }
      std::vector<std::string> endings;
      for (const json& x : *e) {
        if (!x.is_string()) return FieldError(jsonl, line, "\"endings\" holds a non-string");
        endings.push_back(HellaswagPreprocess(x.get<std::string>()));
      }
      auto g = j.find("label");
      StatusOr<int64_t> gold = g == j.end() ? absl::InvalidArgumentError("") : IntLike(*g);
      if (!gold.ok() || *gold < 0 || *gold >= static_cast<int64_t>(endings.size())) {
        return FieldError(jsonl, line, "\"label\" is not an index into \"endings\"");
      }
      const std::string query =
          HellaswagPreprocess(label + ": " + ctx_a + " " + PyCapitalize(ctx_b));
      t.docs.push_back(ContinuationChoices(query, endings, *gold));
      return absl::OkStatus();
    }));
    return t;
  }
  const std::string txt = dir + "/hellaswag/hellaswag_val_full.txt";
  if (!fs::exists(txt)) {
    return absl::NotFoundError(absl::StrCat("hellaswag: neither ", jsonl, " nor ", txt, " exists"));
  }
  TaskData t{"hellaswag",
             txt,
             "llama.cpp's preprocessed layout (ctx_b keeps its case; lm-eval capitalizes it), "
             "scores can differ slightly from lm-eval's",
             true,
             {}};
  ASSIGN_OR_RETURN(std::vector<std::string> lines, ReadLines(txt));
  if (lines.size() % 6 != 0) {
    return FieldError(txt, static_cast<int64_t>(lines.size()),
                      "line count is not a multiple of 6 (query, label, 4 endings per task)");
  }
  for (size_t i = 0; i < lines.size(); i += 6) {
    const std::string& g = lines[i + 1];
    if (g.size() != 1 || g[0] < '0' || g[0] > '3') {
      return FieldError(txt, static_cast<int64_t>(i + 2), "label is not 0..3");
    }
    t.docs.push_back(ContinuationChoices(
        lines[i], {lines[i + 2], lines[i + 3], lines[i + 4], lines[i + 5]}, g[0] - '0'));
  }
  return t;
}

StatusOr<TaskData> LoadWinogrande(const std::string& dir) {
  TaskData t{"winogrande", dir + "/winogrande/dev.jsonl", "", false, {}};
  RETURN_IF_ERROR(ForEachJsonLine(t.source, [&](const json& j, int64_t line) -> Status {
    ASSIGN_OR_RETURN(std::string sentence, StringField(j, "sentence", t.source, line));
    ASSIGN_OR_RETURN(std::string o1, StringField(j, "option1", t.source, line));
    ASSIGN_OR_RETURN(std::string o2, StringField(j, "option2", t.source, line));
    auto a = j.find("answer");
    StatusOr<int64_t> answer = a == j.end() ? absl::InvalidArgumentError("") : IntLike(*a);
    if (!answer.ok() || (*answer != 1 && *answer != 2)) {
      return FieldError(t.source, line, "\"answer\" is not \"1\" or \"2\"");
    }
    const size_t blank = sentence.find('_');
    if (blank == std::string::npos) return FieldError(t.source, line, "sentence has no \"_\"");
    const std::string target = PyStrip(sentence.substr(blank + 1));
    ChoiceDoc d;
    for (const std::string& o : {o1, o2}) {
      d.contexts.push_back(sentence.substr(0, blank) + o);
      d.continuations.push_back(" " + target);
      d.choices.push_back(sentence.substr(0, blank) + o);
    }
    d.gold = *answer - 1;
    t.docs.push_back(std::move(d));
    return absl::OkStatus();
  }));
  return t;
}

StatusOr<TaskData> LoadBoolq(const std::string& dir) {
  TaskData t{"boolq", dir + "/boolq/val.jsonl", "", false, {}};
  RETURN_IF_ERROR(ForEachJsonLine(t.source, [&](const json& j, int64_t line) -> Status {
    ASSIGN_OR_RETURN(std::string passage, StringField(j, "passage", t.source, line));
    ASSIGN_OR_RETURN(std::string question, StringField(j, "question", t.source, line));
    auto l = j.find("label");
    int64_t gold = -1;
    if (l != j.end() && l->is_boolean()) gold = l->get<bool>() ? 1 : 0;
    if (l != j.end() && l->is_string()) {
      const std::string s = l->get<std::string>();
      if (s == "true" || s == "True") gold = 1;
      if (s == "false" || s == "False") gold = 0;
    }
    if (l != j.end() && l->is_number_integer() &&
        (l->get<int64_t>() == 0 || l->get<int64_t>() == 1)) {
      gold = l->get<int64_t>();
    }
    if (gold < 0) return FieldError(t.source, line, "\"label\" is not true or false");
    t.docs.push_back(ContinuationChoices(
        passage + "\nQuestion: " + question + "?\nAnswer:", {"no", "yes"}, gold));
    return absl::OkStatus();
  }));
  return t;
}

}  // namespace

StatusOr<TaskData> LoadJsonlTask(const std::string& path) {
  TaskData t{fs::path(path).stem().string(), path, "", true, {}};
  RETURN_IF_ERROR(ForEachJsonLine(path, [&](const json& j, int64_t line) -> Status {
    ASSIGN_OR_RETURN(std::string context, StringField(j, "context", path, line));
    if (context.empty()) return FieldError(path, line, "\"context\" is empty");
    auto cs = j.find("choices");
    if (cs == j.end() || !cs->is_array() || cs->size() < 2) {
      return FieldError(path, line, "\"choices\" must be an array of at least 2 strings");
    }
    std::vector<std::string> choices;
    for (const json& c : *cs) {
      if (!c.is_string() || c.get<std::string>().empty()) {
        return FieldError(path, line, "\"choices\" holds an empty or non-string entry");
      }
      choices.push_back(c.get<std::string>());
    }
    auto g = j.find("gold");
    if (g == j.end() || !g->is_number_integer() || g->get<int64_t>() < 0 ||
        g->get<int64_t>() >= static_cast<int64_t>(choices.size())) {
      return FieldError(path, line, "\"gold\" must be an index into \"choices\"");
    }
    t.docs.push_back(ContinuationChoices(context, choices, g->get<int64_t>()));
    return absl::OkStatus();
  }));
  if (t.docs.empty()) return absl::InvalidArgumentError(path + ": no documents");
  return t;
}

namespace {

// The loader of each multiple-choice row of the task catalog (common/catalog.cc), by name.
using ChoiceLoader = StatusOr<TaskData> (*)(const std::string& data_dir);
const std::pair<const char*, ChoiceLoader> kChoiceLoaders[] = {
    {"piqa", &LoadPiqa},
    {"arc_easy", [](const std::string& d) { return LoadArc("arc_easy", d); }},
    {"arc_challenge", [](const std::string& d) { return LoadArc("arc_challenge", d); }},
    {"hellaswag", &LoadHellaswag},
    {"winogrande", &LoadWinogrande},
    {"boolq", &LoadBoolq},
};

}  // namespace

StatusOr<TaskData> LoadChoiceTask(const std::string& name, const std::string& data_dir) {
  if (IsTaskPath(name)) return LoadJsonlTask(name);
  for (const auto& [task, load] : kChoiceLoaders) {
    if (name == task) return load(data_dir);
  }
  return absl::InvalidArgumentError("unknown multiple-choice task \"" + name + "\"");
}

std::pair<std::vector<int32_t>, std::vector<int32_t>> EncodePair(const model::Tokenizer& tokenizer,
                                                                 const std::string& context,
                                                                 const std::string& continuation) {
  const std::string ctx = PyRStrip(context);
  const std::string cont = context.substr(ctx.size()) + continuation;
  std::vector<int32_t> whole = tokenizer.Encode(ctx + cont);
  std::vector<int32_t> ctx_enc = tokenizer.Encode(ctx);
  const size_t n = std::min(ctx_enc.size(), whole.size());
  return {std::move(ctx_enc),
          std::vector<int32_t>(whole.begin() + static_cast<int64_t>(n), whole.end())};
}

std::string PyStrip(const std::string& s) {
  auto cps = Decode(s);
  size_t b = 0, e = cps.size();
  while (b < e && IsPySpace(cps[b].first)) ++b;
  while (e > b && IsPySpace(cps[e - 1].first)) --e;
  if (b == e) return "";
  const size_t from = cps[b].second;
  const size_t to = e == cps.size() ? s.size() : cps[e].second;
  return s.substr(from, to - from);
}

std::string PyCapitalize(const std::string& s) {
  std::string out;
  bool first = true;
  for (const auto& [c, off] : Decode(s)) {
    AppendUtf8(&out, first ? utf8proc_totitle(c) : utf8proc_tolower(c));
    first = false;
  }
  return out;
}

int64_t CodepointLength(const std::string& s) { return static_cast<int64_t>(Decode(s).size()); }

std::string HellaswagPreprocess(const std::string& text) {
  std::string s = ReplaceAll(PyStrip(text), " [title]", ". ");
  // re.sub("\\[.*?\\]", "", s): '.' does not match "\n".
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '[') {
      size_t j = i + 1;
      while (j < s.size() && s[j] != ']' && s[j] != '\n') ++j;
      if (j < s.size() && s[j] == ']') {
        i = j + 1;
        continue;
      }
    }
    out.push_back(s[i++]);
  }
  return ReplaceAll(out, "  ", " ");
}

MetricValue MeanWithStderr(const std::vector<double>& xs) {
  MetricValue m;
  if (xs.empty()) return m;
  const double n = static_cast<double>(xs.size());
  double sum = 0;
  for (double x : xs) sum += x;
  m.value = sum / n;
  if (xs.size() < 2) return m;
  double ss = 0;
  for (double x : xs) ss += (x - m.value) * (x - m.value);
  m.stderr_ = std::sqrt(ss / (n - 1)) / std::sqrt(n);
  return m;
}

StatusOr<ChoiceTaskResult> EvaluateChoiceTask(const model::Qwen3Model& model,
                                              const model::Tokenizer& tokenizer,
                                              const TaskData& task,
                                              const ChoiceTaskOptions& options) {
  ChoiceTaskResult r;
  r.task = task.name;
  r.available = static_cast<int64_t>(task.docs.size());
  r.n = options.limit > 0 ? std::min(options.limit, r.available) : r.available;
  r.limited = r.n < r.available;
  r.has_acc_norm = task.has_acc_norm;
  if (r.n == 0) return absl::InvalidArgumentError(task.name + ": no documents to evaluate");

  std::vector<LoglikelihoodRequest> requests;
  for (int64_t d = 0; d < r.n; ++d) {
    const ChoiceDoc& doc = task.docs[d];
    for (size_t c = 0; c < doc.contexts.size(); ++c) {
      auto [ctx, cont] = EncodePair(tokenizer, doc.contexts[c], doc.continuations[c]);
      if (ctx.empty() || cont.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(task.name, ": document ", d, " choice ", c,
                                                       " tokenizes to an empty ",
                                                       ctx.empty() ? "context" : "continuation"));
      }
      requests.push_back({std::move(ctx), std::move(cont)});
    }
  }
  ASSIGN_OR_RETURN(r.engine, ScoreLoglikelihood(model, requests, options.engine));

  std::vector<double> acc, acc_norm;
  size_t k = 0;
  for (int64_t d = 0; d < r.n; ++d) {
    const ChoiceDoc& doc = task.docs[d];
    int64_t best = 0, best_norm = 0;
    double best_ll = -INFINITY, best_norm_ll = -INFINITY;
    for (size_t c = 0; c < doc.contexts.size(); ++c, ++k) {
      const double ll = r.engine.results[k].logprob;
      const double norm = ll / static_cast<double>(CodepointLength(doc.choices[c]));
      if (c == 0 || ll > best_ll) {
        best_ll = ll;
        best = static_cast<int64_t>(c);
      }
      if (c == 0 || norm > best_norm_ll) {
        best_norm_ll = norm;
        best_norm = static_cast<int64_t>(c);
      }
    }
    r.predictions.push_back(best);
    r.predictions_norm.push_back(best_norm);
    acc.push_back(best == doc.gold ? 1.0 : 0.0);
    acc_norm.push_back(best_norm == doc.gold ? 1.0 : 0.0);
  }
  r.acc = MeanWithStderr(acc);
  r.acc_norm = MeanWithStderr(acc_norm);
  r.engine.results.clear();
  return r;
}

}  // namespace bitsweep::eval
