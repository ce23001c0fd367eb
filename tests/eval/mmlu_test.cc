#include "eval/mmlu.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "model/qwen3.h"
#include "model/tiny_model.h"
#include "model/tokenizer.h"
#include "tests/testing/paths.h"

namespace {

namespace fs = std::filesystem;
using Catch::Matchers::Contains;

void WriteFile(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

// The study script's prompt, written out independently of eval/mmlu.cc.
std::string ScriptPrompt(const std::string& subject_words, const std::vector<std::string>& shots,
                         const std::string& question) {
  std::string s = "The following are multiple choice questions (with answers) about  " +
                  subject_words + ".\n\n";
  for (const auto& shot : shots) s += shot;
  return s + question;
}

std::string Row(int i, char answer) {
  const std::string q = "What is item " + std::to_string(i) + " of the list, quoted \"\"here\"\"?";
  return "\"" + q + "\",alpha " + std::to_string(i) + ",beta,gamma " + std::to_string(i * 3) +
         ",delta," + std::string(1, answer) + "\n";
}

std::string Formatted(int i, char answer, bool with_answer) {
  std::string s = "What is item " + std::to_string(i) +
                  " of the list, quoted \"here\"?\nA. alpha " + std::to_string(i) +
                  "\nB. beta\nC. gamma " + std::to_string(i * 3) + "\nD. delta\nAnswer:";
  if (with_answer) s += std::string(" ") + answer + "\n\n";
  return s;
}

}  // namespace

TEST_CASE("MMLU CSV cells are read as Python's csv and pandas give them", "[eval]") {
  const std::string dir = bitsweep::testing::ScratchDir("mmlu_csv");
  WriteFile(dir + "/a.csv",
            "\"Line one\nline two, with comma\",\"say \"\"hi\"\"\",NA,,x,C\r\n"
            "plain question,1,2,3,4,A\n");
  auto q = bitsweep::eval::ReadMmluCsv(dir + "/a.csv");
  REQUIRE(q.ok());
  REQUIRE(q->size() == 2);
  CHECK((*q)[0].question == "Line one\nline two, with comma");
  CHECK((*q)[0].choices[0] == "say \"hi\"");
  CHECK((*q)[0].choices[1] == "nan");  // pandas NA string
  CHECK((*q)[0].choices[2] == "nan");  // empty cell
  CHECK((*q)[0].answer == "C");
  CHECK((*q)[1].choices[3] == "4");

  WriteFile(dir + "/b.csv", "\"multi\nline\",a,b,c,d,A\nq,a,b,c,A\n");
  auto bad = bitsweep::eval::ReadMmluCsv(dir + "/b.csv");
  REQUIRE(!bad.ok());
  CHECK_THAT(std::string(bad.status().message()), Contains("b.csv:3: expected 6 columns"));
  WriteFile(dir + "/c.csv", "q,a,b,c,d,E\n");
  bad = bitsweep::eval::ReadMmluCsv(dir + "/c.csv");
  REQUIRE(!bad.ok());
  CHECK_THAT(std::string(bad.status().message()), Contains("c.csv:1: answer \"E\""));
  WriteFile(dir + "/d.csv", "\"never closed,a,b\n");
  bad = bitsweep::eval::ReadMmluCsv(dir + "/d.csv");
  REQUIRE(!bad.ok());
  CHECK_THAT(std::string(bad.status().message()), Contains("quoted field not closed"));
}

TEST_CASE("MMLU prompts are the Hendrycks script's text for real items", "[eval][data]") {
  REQUIRE_SHARED_DATA(data);
  auto subjects = bitsweep::eval::MmluSubjects(data);
  REQUIRE(subjects.ok());
  CHECK(subjects->size() == 57);
  int64_t tests = 0, devs = 0;
  for (const auto& s : *subjects) {
    INFO(s);
    CHECK(!bitsweep::eval::MmluCategory(bitsweep::eval::MmluSubcategory(s)).empty());
    auto t = bitsweep::eval::ReadMmluCsv(data + "/mmlu/test/" + s + "_test.csv");
    auto d = bitsweep::eval::ReadMmluCsv(data + "/mmlu/dev/" + s + "_dev.csv");
    REQUIRE(t.ok());
    REQUIRE(d.ok());
    tests += static_cast<int64_t>(t->size());
    devs += static_cast<int64_t>(d->size());
  }
  CHECK(tests == 14042);
  CHECK(devs == 285);

  auto dev = bitsweep::eval::ReadMmluCsv(data + "/mmlu/dev/abstract_algebra_dev.csv");
  auto test = bitsweep::eval::ReadMmluCsv(data + "/mmlu/test/abstract_algebra_test.csv");
  REQUIRE(dev.ok());
  REQUIRE(test.ok());
  CHECK(bitsweep::eval::MmluPrompt("abstract_algebra", *dev, 1, (*test)[0]) ==
        "The following are multiple choice questions (with answers) about  abstract algebra.\n\n"
        "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.\nA. 0\nB. 1\nC. 2\nD. 3\n"
        "Answer: B\n\n"
        "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\n"
        "A. 0\nB. 4\nC. 2\nD. 6\nAnswer:");
  CHECK(
      bitsweep::eval::MmluPrompt("abstract_algebra", *dev, 5, (*test)[0])
          .find("Statement 1 | If aH is an element of a factor group, then |aH| divides |a|. "
                "Statement 2 | If H and K are subgroups of G then HK is a subgroup of G.\n"
                "A. True, True\nB. False, False\nC. True, False\nD. False, True\nAnswer: B\n\n") !=
      std::string::npos);
}

TEST_CASE("MMLU accuracy equals a direct computation, with shots dropped to fit the limit",
          "[eval]") {
  const std::string dir = bitsweep::testing::ScratchDir("mmlu_direct");
  bitsweep::model::TinyModelOptions o;
  o.seed = 4;
  REQUIRE(bitsweep::model::WriteTinyModel(dir + "/model", o).ok());
  auto model = bitsweep::model::Qwen3Model::Load(dir + "/model");
  auto tok = bitsweep::model::Tokenizer::Load(dir + "/model");
  REQUIRE(model.ok());
  REQUIRE(tok.ok());
  const std::string data = dir + "/data";
  const std::vector<std::pair<std::string, std::string>> subjects = {
      {"abstract_algebra", "abstract algebra"}, {"sociology", "sociology"}};
  const std::string answers = "ABCDDCBAACBD";
  for (size_t s = 0; s < subjects.size(); ++s) {
    std::string dev, test;
    for (int i = 0; i < 5; ++i) dev += Row(100 + i, answers[i]);
    for (int i = 0; i < 7; ++i) test += Row(static_cast<int>(s) * 10 + i, answers[i + s]);
    WriteFile(data + "/mmlu/dev/" + subjects[s].first + "_dev.csv", dev);
    WriteFile(data + "/mmlu/test/" + subjects[s].first + "_test.csv", test);
  }

  bitsweep::eval::MmluOptions opts;
  // About four shots fit: the later questions of the test lose one or two.
  const int64_t shot_tokens =
      static_cast<int64_t>((*tok)->Encode(Formatted(100, 'A', true)).size());
  opts.max_tokens =
      static_cast<int64_t>(
          (*tok)->Encode(ScriptPrompt("abstract algebra", {}, Formatted(0, 'A', false))).size()) +
      4 * shot_tokens;
  auto r = bitsweep::eval::EvaluateMmlu(**model, **tok, data, opts);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(r->n == 14);
  CHECK(r->shots_reduced > 0);

  c10::InferenceMode guard;
  int32_t letters[4];
  for (int j = 0; j < 4; ++j) letters[j] = (*tok)->Encode(std::string(1, 'A' + j)).back();
  double correct = 0;
  size_t q = 0;
  std::map<std::string, std::pair<double, int>> by_category;
  for (size_t s = 0; s < subjects.size(); ++s) {
    for (int i = 0; i < 7; ++i, ++q) {
      int k = 5;
      std::vector<int32_t> ids;
      while (true) {
        std::vector<std::string> shots;
        for (int j = 0; j < k; ++j) shots.push_back(Formatted(100 + j, answers[j], true));
        ids = (*tok)->Encode(ScriptPrompt(subjects[s].second, shots,
                                          Formatted(static_cast<int>(s) * 10 + i, 'A', false)));
        if (static_cast<int64_t>(ids.size()) <= opts.max_tokens || k == 0) break;
        --k;
      }
      std::vector<int64_t> in(ids.begin(), ids.end());
      at::Tensor logits = (*model)->Forward(at::tensor(in, at::kLong).unsqueeze(0))[0][-1];
      int64_t best = 0;
      for (int j = 1; j < 4; ++j) {
        if (logits[letters[j]].item<float>() > logits[letters[best]].item<float>()) best = j;
      }
      CHECK(r->predictions[q] == best);
      const double cor = best == answers[i + s] - 'A';
      correct += cor;
      auto& cat = by_category[s == 0 ? "STEM" : "social sciences"];
      cat.first += cor;
      cat.second += 1;
    }
  }
  CHECK(r->overall.acc.value == Approx(correct / 14));
  CHECK(r->subjects.at("abstract_algebra").n == 7);
  CHECK(r->subcategories.at("math").n == 7);
  CHECK(r->subcategories.at("culture").n == 7);
  for (const auto& [name, v] : by_category) {
    INFO(name);
    CHECK(r->categories.at(name).n == v.second);
    CHECK(r->categories.at(name).acc.value == Approx(v.first / v.second));
  }

  opts.limit = 3;
  auto lim = bitsweep::eval::EvaluateMmlu(**model, **tok, data, opts);
  REQUIRE(lim.ok());
  CHECK(lim->n == 6);
  CHECK(lim->available == 14);
  CHECK(lim->limited);
  CHECK(lim->predictions[3] == r->predictions[7]);  // sociology's first question
}
