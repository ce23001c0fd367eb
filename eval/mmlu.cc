#include "eval/mmlu.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "model/tokenizer.h"

namespace bitsweep::eval {
namespace {

namespace fs = std::filesystem;

const char* const kLetters[4] = {"A", "B", "C", "D"};

// pandas' default NA strings (read_csv keep_default_na): such a cell becomes NaN, "nan" in text.
bool IsPandasNa(const std::string& s) {
  static const std::set<std::string> na = {"",         "#N/A", "#N/A N/A", "#NA",    "-1.#IND",
                                           "-1.#QNAN", "-NaN", "-nan",     "1.#IND", "1.#QNAN",
                                           "<NA>",     "N/A",  "NA",       "NULL",   "NaN",
                                           "None",     "n/a",  "nan",      "null"};
  return na.count(s) > 0;
}

// Python's csv module, excel dialect: ',' separates fields, '"' quotes, '""' is a quote inside
// quotes, records end at "\n" or "\r\n" outside quotes. Each record carries its first line.
StatusOr<std::vector<std::pair<int64_t, std::vector<std::string>>>> ParseCsv(
    const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::pair<int64_t, std::vector<std::string>>> records;
  std::vector<std::string> fields;
  std::string field;
  bool quoted = false, in_quotes = false, any = false;
  int64_t line = 1, record_line = 1;
  auto end_field = [&]() {
    fields.push_back(std::move(field));
    field.clear();
    quoted = false;
  };
  auto end_record = [&]() {
    end_field();
    records.push_back({record_line, std::move(fields)});
    fields.clear();
    any = false;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_quotes) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else {
          in_quotes = false;
        }
      } else {
        if (c == '\n') ++line;
        field.push_back(c);
      }
      continue;
    }
    if (!any) record_line = line;
    any = true;
    if (c == '"' && field.empty() && !quoted) {
      in_quotes = quoted = true;
    } else if (c == ',') {
      end_field();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      end_record();
      ++line;
    } else {
      field.push_back(c);
    }
  }
  if (in_quotes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":", record_line, ": quoted field not closed at end of file"));
  }
  if (any) end_record();
  return records;
}

const std::map<std::string, std::string>& Subcategories() {
  static const std::map<std::string, std::string> m = {
      {"abstract_algebra", "math"},
      {"anatomy", "health"},
      {"astronomy", "physics"},
      {"business_ethics", "business"},
      {"clinical_knowledge", "health"},
      {"college_biology", "biology"},
      {"college_chemistry", "chemistry"},
      {"college_computer_science", "computer science"},
      {"college_mathematics", "math"},
      {"college_medicine", "health"},
      {"college_physics", "physics"},
      {"computer_security", "computer science"},
      {"conceptual_physics", "physics"},
      {"econometrics", "economics"},
      {"electrical_engineering", "engineering"},
      {"elementary_mathematics", "math"},
      {"formal_logic", "philosophy"},
      {"global_facts", "other"},
      {"high_school_biology", "biology"},
      {"high_school_chemistry", "chemistry"},
      {"high_school_computer_science", "computer science"},
      {"high_school_european_history", "history"},
      {"high_school_geography", "geography"},
      {"high_school_government_and_politics", "politics"},
      {"high_school_macroeconomics", "economics"},
      {"high_school_mathematics", "math"},
      {"high_school_microeconomics", "economics"},
      {"high_school_physics", "physics"},
      {"high_school_psychology", "psychology"},
      {"high_school_statistics", "math"},
      {"high_school_us_history", "history"},
      {"high_school_world_history", "history"},
      {"human_aging", "health"},
      {"human_sexuality", "culture"},
      {"international_law", "law"},
      {"jurisprudence", "law"},
      {"logical_fallacies", "philosophy"},
      {"machine_learning", "computer science"},
      {"management", "business"},
      {"marketing", "business"},
      {"medical_genetics", "health"},
      {"miscellaneous", "other"},
      {"moral_disputes", "philosophy"},
      {"moral_scenarios", "philosophy"},
      {"nutrition", "health"},
      {"philosophy", "philosophy"},
      {"prehistory", "history"},
      {"professional_accounting", "other"},
      {"professional_law", "law"},
      {"professional_medicine", "health"},
      {"professional_psychology", "psychology"},
      {"public_relations", "politics"},
      {"security_studies", "politics"},
      {"sociology", "culture"},
      {"us_foreign_policy", "politics"},
      {"virology", "health"},
      {"world_religions", "philosophy"},
  };
  return m;
}

const std::map<std::string, std::string>& Categories() {
  static const std::map<std::string, std::string> m = {
      {"physics", "STEM"},
      {"chemistry", "STEM"},
      {"biology", "STEM"},
      {"computer science", "STEM"},
      {"math", "STEM"},
      {"engineering", "STEM"},
      {"history", "humanities"},
      {"philosophy", "humanities"},
      {"law", "humanities"},
      {"politics", "social sciences"},
      {"culture", "social sciences"},
      {"economics", "social sciences"},
      {"geography", "social sciences"},
      {"psychology", "social sciences"},
      {"other", "other (business, health, misc.)"},
      {"business", "other (business, health, misc.)"},
      {"health", "other (business, health, misc.)"},
  };
  return m;
}

std::string FormatExample(const MmluQuestion& q, bool include_answer) {
  std::string s = q.question;
  for (int j = 0; j < 4; ++j) absl::StrAppend(&s, "\n", kLetters[j], ". ", q.choices[j]);
  s += "\nAnswer:";
  if (include_answer) absl::StrAppend(&s, " ", q.answer, "\n\n");
  return s;
}

}  // namespace

StatusOr<std::vector<MmluQuestion>> ReadMmluCsv(const std::string& path) {
  ASSIGN_OR_RETURN(auto records, ParseCsv(path));
  std::vector<MmluQuestion> out;
  for (auto& [line, f] : records) {
    if (f.size() != 6) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", line,
                                                     ": expected 6 columns "
                                                     "(question, A, B, C, D, answer), found ",
                                                     f.size()));
    }
    for (auto& cell : f) {
      if (IsPandasNa(cell)) cell = "nan";
    }
    MmluQuestion q;
    q.question = f[0];
    for (int j = 0; j < 4; ++j) q.choices[j] = f[j + 1];
    q.answer = f[5];
    if (q.answer != "A" && q.answer != "B" && q.answer != "C" && q.answer != "D") {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line, ": answer \"", q.answer, "\" is not A, B, C or D"));
    }
    out.push_back(std::move(q));
  }
  if (out.empty()) return absl::InvalidArgumentError(path + ": no questions");
  return out;
}

StatusOr<std::vector<std::string>> MmluSubjects(const std::string& data_dir) {
  const fs::path dir = fs::path(data_dir) / "mmlu" / "test";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat(dir.string(), ": no such directory"));
  }
  std::vector<std::string> subjects;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    const std::string suffix = "_test.csv";
    if (name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      subjects.push_back(name.substr(0, name.size() - suffix.size()));
    }
  }
  std::sort(subjects.begin(), subjects.end());
  if (subjects.empty()) return absl::NotFoundError(dir.string() + ": no *_test.csv files");
  return subjects;
}

std::string MmluPrompt(const std::string& subject, const std::vector<MmluQuestion>& dev,
                       int64_t shots, const MmluQuestion& test) {
  std::string words;
  for (const auto& w : absl::StrSplit(subject, '_')) absl::StrAppend(&words, " ", w);
  std::string s = absl::StrCat("The following are multiple choice questions (with answers) about ",
                               words, ".\n\n");
  for (int64_t i = 0; i < shots && i < static_cast<int64_t>(dev.size()); ++i) {
    s += FormatExample(dev[i], true);
  }
  return s + FormatExample(test, false);
}

const std::string& MmluSubcategory(const std::string& subject) {
  static const std::string none;
  auto it = Subcategories().find(subject);
  return it == Subcategories().end() ? none : it->second;
}

const std::string& MmluCategory(const std::string& subcategory) {
  static const std::string none;
  auto it = Categories().find(subcategory);
  return it == Categories().end() ? none : it->second;
}

StatusOr<MmluResult> EvaluateMmlu(const model::Qwen3Model& model, const model::Tokenizer& tokenizer,
                                  const std::string& data_dir, const MmluOptions& options) {
  std::vector<std::string> subjects = options.subjects;
  if (subjects.empty()) {
    ASSIGN_OR_RETURN(subjects, MmluSubjects(data_dir));
  }
  int32_t letter_ids[4];
  for (int j = 0; j < 4; ++j) {
    const std::vector<int32_t> ids = tokenizer.Encode(kLetters[j]);
    if (ids.empty()) return absl::InternalError("the tokenizer encodes a letter to nothing");
    letter_ids[j] = ids.back();
  }

  MmluResult r;
  std::vector<LoglikelihoodRequest> requests;
  std::vector<std::string> subject_of;  // per question
  std::vector<int64_t> gold;
  for (const std::string& subject : subjects) {
    const fs::path base = fs::path(data_dir) / "mmlu";
    ASSIGN_OR_RETURN(std::vector<MmluQuestion> dev,
                     ReadMmluCsv((base / "dev" / (subject + "_dev.csv")).string()));
    ASSIGN_OR_RETURN(std::vector<MmluQuestion> test,
                     ReadMmluCsv((base / "test" / (subject + "_test.csv")).string()));
    if (static_cast<int64_t>(dev.size()) > options.ntrain) dev.resize(options.ntrain);
    r.available += static_cast<int64_t>(test.size());
    int64_t n = static_cast<int64_t>(test.size());
    if (options.limit > 0 && options.limit < n) {
      n = options.limit;
      r.limited = true;
    }
    for (int64_t i = 0; i < n; ++i) {
      int64_t k = options.ntrain;
      std::vector<int32_t> ids = tokenizer.Encode(MmluPrompt(subject, dev, k, test[i]));
      while (static_cast<int64_t>(ids.size()) > options.max_tokens && k > 0) {
        --k;
        ids = tokenizer.Encode(MmluPrompt(subject, dev, k, test[i]));
      }
      if (k < options.ntrain) ++r.shots_reduced;
      for (int j = 0; j < 4; ++j) requests.push_back({ids, {letter_ids[j]}});
      subject_of.push_back(subject);
      gold.push_back(test[i].answer[0] - 'A');
    }
  }
  ASSIGN_OR_RETURN(r.engine, ScoreLoglikelihood(model, requests, options.engine));

  std::vector<double> all;
  std::map<std::string, std::vector<double>> by_subject, by_subcat, by_cat;
  for (size_t q = 0; q < gold.size(); ++q) {
    int64_t best = 0;
    for (int j = 1; j < 4; ++j) {
      if (r.engine.results[4 * q + j].logprob > r.engine.results[4 * q + best].logprob) best = j;
    }
    r.predictions.push_back(best);
    const double cor = best == gold[q] ? 1.0 : 0.0;
    all.push_back(cor);
    by_subject[subject_of[q]].push_back(cor);
    const std::string& sub = MmluSubcategory(subject_of[q]);
    if (!sub.empty()) {
      by_subcat[sub].push_back(cor);
      by_cat[MmluCategory(sub)].push_back(cor);
    }
  }
  auto group = [](const std::vector<double>& xs) {
    return MmluGroup{MeanWithStderr(xs), static_cast<int64_t>(xs.size())};
  };
  r.overall = group(all);
  r.n = static_cast<int64_t>(all.size());
  for (const auto& [k, v] : by_subject) r.subjects[k] = group(v);
  for (const auto& [k, v] : by_subcat) r.subcategories[k] = group(v);
  for (const auto& [k, v] : by_cat) r.categories[k] = group(v);
  r.engine.results.clear();
  return r;
}

}  // namespace bitsweep::eval
