#include "eval/tasks.h"

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
using bitsweep::eval::ChoiceDoc;
using bitsweep::eval::LoadChoiceTask;
using bitsweep::eval::TaskData;
using Catch::Matchers::Contains;

TaskData MustLoad(const std::string& name, const std::string& dir) {
  auto t = LoadChoiceTask(name, dir);
  INFO(t.status().ToString());
  REQUIRE(t.ok());
  return std::move(t).value();
}

void RequireChoices(const ChoiceDoc& d, const std::string& context,
                    const std::vector<std::string>& choices, int64_t gold) {
  REQUIRE(d.contexts.size() == choices.size());
  for (size_t i = 0; i < choices.size(); ++i) {
    CHECK(d.contexts[i] == context);
    CHECK(d.continuations[i] == " " + choices[i]);
    CHECK(d.choices[i] == choices[i]);
  }
  CHECK(d.gold == gold);
}

void WriteFile(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

}  // namespace

TEST_CASE("Text helpers behave as Python's strip, capitalize, len and HellaSwag's preprocess",
          "[eval]") {
  using namespace bitsweep::eval;
  // Expected strings produced by CPython 3.11 with lm-eval's hellaswag utils.preprocess.
  CHECK(HellaswagPreprocess(
            "Home and Garden: [header] How to grow tomatoes [title] Choose a sunny spot. [step] "
            "Tomatoes need  six hours of sun. " +
            PyCapitalize("tHE soil should [drain] well")) ==
        "Home and Garden: How to grow tomatoes. Choose a sunny spot. Tomatoes need six hours of "
        "sun. The soil should well");
  CHECK(HellaswagPreprocess(" [substeps] Water them   daily. ") == " Water them  daily.");
  CHECK(HellaswagPreprocess("Use [unclosed bracket\n] text") == "Use [unclosed bracket\n] text");
  CHECK(PyCapitalize("ünïcode ÉCOLE") == "Ünïcode école");
  CHECK(PyCapitalize("ǆemal") == "ǅemal");  // title case, not upper case
  CHECK(CodepointLength("héllo wörld") == 11);
  CHECK(PyStrip(" \u3000x y\u00a0\n") == "x y");
  CHECK(PyStrip(" \t ") == "");
}

TEST_CASE("Each task builds lm-eval's request strings for real items", "[eval][data]") {
  REQUIRE_SHARED_DATA(data);
  TaskData piqa = MustLoad("piqa", data);
  CHECK(piqa.docs.size() == 1838);
  CHECK(piqa.has_acc_norm);
  RequireChoices(piqa.docs[0],
                 "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:",
                 {"Provide the guinea pig with a cage full of a few inches of bedding made of "
                  "ripped paper strips, you will also need to supply it with a water bottle and a "
                  "food dish.",
                  "Provide the guinea pig with a cage full of a few inches of bedding made of "
                  "ripped jeans material, you will also need to supply it with a water bottle and "
                  "a food dish."},
                 0);
  RequireChoices(piqa.docs[1], "Question: dresser\nAnswer:",
                 {"replace drawer with bobby pin ", "finish, woodgrain with  bobby pin "}, 1);

  TaskData easy = MustLoad("arc_easy", data);
  CHECK(easy.docs.size() == 2376);
  RequireChoices(easy.docs[0],
                 "Question: Which statement best explains why photosynthesis is the foundation "
                 "of most food webs?\nAnswer:",
                 {"Sunlight is the source of energy for nearly all ecosystems.",
                  "Most ecosystems are found on land instead of in water.",
                  "Carbon dioxide is more available than other gases.",
                  "The producers in all ecosystems are plants."},
                 0);
  TaskData challenge = MustLoad("arc_challenge", data);
  CHECK(challenge.docs.size() == 1172);
  CHECK(challenge.docs[0].gold == 2);
  // Numeric labels ("1".."4") map through the label list like letters do.
  RequireChoices(challenge.docs[44],
                 "Question: Which statement best describes the energy changes that occur while a "
                 "child is riding on a sled down a steep, snow-covered hill?\nAnswer:",
                 {"Kinetic energy decreases and potential energy increases.",
                  "Kinetic energy increases and potential energy decreases.",
                  "Both potential energy and kinetic energy decrease.",
                  "Both potential energy and kinetic energy increase."},
                 1);

  TaskData wino = MustLoad("winogrande", data);
  CHECK(wino.docs.size() == 1267);
  CHECK(!wino.has_acc_norm);
  const ChoiceDoc& w = wino.docs[0];
  REQUIRE(w.contexts.size() == 2);
  CHECK(w.contexts[0] == "Sarah was a much better surgeon than Maria so Sarah");
  CHECK(w.contexts[1] == "Sarah was a much better surgeon than Maria so Maria");
  CHECK(w.continuations[0] == " always got the easier cases.");
  CHECK(w.continuations[1] == " always got the easier cases.");
  CHECK(w.gold == 1);

  TaskData boolq = MustLoad("boolq", data);
  CHECK(boolq.docs.size() == 3270);
  CHECK(!boolq.has_acc_norm);
  const ChoiceDoc& b = boolq.docs[0];
  REQUIRE(b.contexts.size() == 2);
  CHECK(b.contexts[0].rfind("Ethanol fuel -- All biomass goes through", 0) == 0);
  CHECK_THAT(b.contexts[0],
             Catch::Matchers::EndsWith(
                 "producing gasoline.\nQuestion: does ethanol take more energy make that "
                 "produces?\nAnswer:"));
  CHECK(b.continuations == std::vector<std::string>{" no", " yes"});
  CHECK(b.gold == 0);

  TaskData hs = MustLoad("hellaswag", data);
  CHECK(hs.docs.size() == 10042);
  CHECK(!hs.note.empty());  // the derived layout says so
  RequireChoices(hs.docs[0], "Roof shingle removal: A man is sitting on a roof. he",
                 {"is using wrap to wrap a pair of skis.", "is ripping level tiles off.",
                  "is holding a rubik's cube.", "starts pulling up roofing on a roof."},
                 3);
}

TEST_CASE("HellaSwag in its original JSONL layout is preprocessed as lm-eval does", "[eval]") {
  const std::string dir = bitsweep::testing::ScratchDir("hellaswag_jsonl");
  WriteFile(
      dir + "/hellaswag/hellaswag_val.jsonl",
      R"({"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.", "ctx_b": "he", "ctx": "A man is sitting on a roof. he", "split": "val", "split_type": "indomain", "label": "3", "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.", "is holding a rubik's cube.", "starts pulling up roofing on a roof."], "source_id": "activitynet~v_-JhWjGDPHMY"})"
      "\n"
      R"({"activity_label": "Home and Garden", "ctx_a": "[header] How to grow tomatoes [title] Choose a sunny spot.", "ctx_b": "tHE soil", "label": 0, "endings": [" [substeps] Water them   daily. ", "b", "c", "d"]})"
      "\n");
  TaskData t = MustLoad("hellaswag", dir);
  REQUIRE(t.docs.size() == 2);
  CHECK(t.note.empty());
  RequireChoices(t.docs[0], "Roof shingle removal: A man is sitting on a roof. He",
                 {"is using wrap to wrap a pair of skis.", "is ripping level tiles off.",
                  "is holding a rubik's cube.", "starts pulling up roofing on a roof."},
                 3);
  RequireChoices(t.docs[1], "Home and Garden: How to grow tomatoes. Choose a sunny spot. The soil",
                 {" Water them  daily.", "b", "c", "d"}, 0);
}

TEST_CASE("Malformed task files are rejected naming the file and line", "[eval]") {
  const std::string dir = bitsweep::testing::ScratchDir("bad_tasks");
  auto message = [&](const std::string& task) {
    auto t = LoadChoiceTask(task, dir);
    REQUIRE(!t.ok());
    return std::string(t.status().message());
  };
  CHECK_THAT(message("piqa"), Contains("valid-labels.lst: cannot open"));
  WriteFile(dir + "/piqa/valid.jsonl",
            "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n{\"goal\": \"g\", \"sol1\n");
  WriteFile(dir + "/piqa/valid-labels.lst", "0\n1\n");
  CHECK_THAT(message("piqa"), Contains("piqa/valid.jsonl:2: not valid JSON"));
  WriteFile(dir + "/piqa/valid.jsonl", "{\"goal\": \"g\", \"sol1\": \"a\"}\n");
  CHECK_THAT(message("piqa"), Contains("valid.jsonl:1: missing string field \"sol2\""));
  WriteFile(
      dir + "/arc/ARC-Easy-Test.jsonl",
      R"({"question": {"stem": "s", "choices": [{"text": "x", "label": "A"}]}, "answerKey": "B"})"
      "\n");
  CHECK_THAT(message("arc_easy"),
             Contains("ARC-Easy-Test.jsonl:1: answerKey \"B\" is not a choice label"));
  WriteFile(dir + "/boolq/val.jsonl",
            "\n{\"passage\": \"p\", \"question\": \"q\", \"label\": 3}\n");
  CHECK_THAT(message("boolq"), Contains("val.jsonl:2: \"label\" is not true or false"));
  WriteFile(dir + "/winogrande/dev.jsonl",
            R"({"sentence": "no blank", "option1": "a", "option2": "b", "answer": "1"})");
  CHECK_THAT(message("winogrande"), Contains("dev.jsonl:1: sentence has no \"_\""));
  WriteFile(dir + "/mine.jsonl", R"({"context": "c", "choices": ["a", "b"], "gold": 2})");
  CHECK_THAT(message(dir + "/mine.jsonl"),
             Contains("mine.jsonl:1: \"gold\" must be an index into \"choices\""));
  CHECK_THAT(message("hellaswag"), Contains("hellaswag"));
  CHECK_THAT(message("nosuch"), Contains("unknown multiple-choice task \"nosuch\""));
}

TEST_CASE("Requests move the context's trailing spaces into the continuation, as lm-eval does",
          "[eval]") {
  const std::string dir = bitsweep::testing::ScratchDir("encode_pair");
  REQUIRE(bitsweep::model::WriteTinyModel(dir, {}).ok());
  auto tok = bitsweep::model::Tokenizer::Load(dir);
  REQUIRE(tok.ok());
  auto [ctx, cont] = bitsweep::eval::EncodePair(**tok, "Answer: \n", "yes");
  CHECK(ctx == (*tok)->Encode("Answer:"));
  std::vector<int32_t> whole = (*tok)->Encode("Answer: \nyes");
  CHECK(cont ==
        std::vector<int32_t>(whole.begin() + static_cast<int64_t>(ctx.size()), whole.end()));
}

TEST_CASE("acc and acc_norm equal a direct computation of their definitions", "[eval]") {
  const std::string dir = bitsweep::testing::ScratchDir("acc_direct");
  bitsweep::model::TinyModelOptions o;
  o.seed = 9;
  REQUIRE(bitsweep::model::WriteTinyModel(dir + "/model", o).ok());
  auto model = bitsweep::model::Qwen3Model::Load(dir + "/model");
  auto tok = bitsweep::model::Tokenizer::Load(dir + "/model");
  REQUIRE(model.ok());
  REQUIRE(tok.ok());
  // Choices of very different lengths in characters and bytes (multi-byte letters), so that
  // length normalisation changes decisions and bytes are not mistaken for characters.
  std::string jsonl;
  const std::vector<std::string> pool = {"é",         "so",    "a longer answer here",
                                         "ünïcödé ÿ", "x y z", "the end of the story is near",
                                         "no",        "ça",    "zzzzzzzzzzzzzz"};
  for (int d = 0; d < 24; ++d) {
    jsonl +=
        "{\"context\": \"Question " + std::to_string(d) + ": pick one\\nAnswer:\", \"choices\": [";
    const int n = 2 + d % 3;
    for (int c = 0; c < n; ++c) {
      jsonl += (c ? ", \"" : "\"") + pool[(d * 5 + c * 7) % pool.size()] + "\"";
    }
    jsonl += "], \"gold\": " + std::to_string(d % n) + "}\n";
  }
  WriteFile(dir + "/custom.jsonl", jsonl);
  TaskData task = MustLoad(dir + "/custom.jsonl", "");
  CHECK(task.name == "custom");

  bitsweep::eval::ChoiceTaskOptions opts;
  auto r = bitsweep::eval::EvaluateChoiceTask(**model, **tok, task, opts);
  REQUIRE(r.ok());

  // Direct: each choice scored alone from Forward over tok(context + " " + choice).
  c10::InferenceMode guard;
  double acc = 0, acc_norm = 0;
  int64_t norm_differs = 0;
  for (size_t d = 0; d < task.docs.size(); ++d) {
    const ChoiceDoc& doc = task.docs[d];
    std::vector<double> ll, lln;
    for (size_t c = 0; c < doc.choices.size(); ++c) {
      std::vector<int32_t> ctx = (*tok)->Encode(doc.contexts[c]);
      std::vector<int32_t> whole = (*tok)->Encode(doc.contexts[c] + " " + doc.choices[c]);
      std::vector<int64_t> in(whole.begin(), whole.end() - 1);
      at::Tensor lp = at::log_softmax(
          (*model)->Forward(at::tensor(in, at::kLong).unsqueeze(0))[0].to(at::kDouble), -1);
      double s = 0;
      for (size_t k = ctx.size(); k < whole.size(); ++k) s += lp[k - 1][whole[k]].item<double>();
      ll.push_back(s);
      // Python len(): characters, not bytes.
      int64_t chars = 0;
      for (unsigned char ch : doc.choices[c]) chars += (ch & 0xC0) != 0x80;
      lln.push_back(s / static_cast<double>(chars));
    }
    const int64_t pred = std::max_element(ll.begin(), ll.end()) - ll.begin();
    const int64_t pred_norm = std::max_element(lln.begin(), lln.end()) - lln.begin();
    CHECK(r->predictions[d] == pred);
    CHECK(r->predictions_norm[d] == pred_norm);
    norm_differs += pred != pred_norm;
    acc += pred == doc.gold;
    acc_norm += pred_norm == doc.gold;
  }
  const double n = static_cast<double>(task.docs.size());
  CHECK(norm_differs > 0);
  CHECK(r->n == 24);
  CHECK(!r->limited);
  CHECK(r->acc.value == Approx(acc / n));
  CHECK(r->acc_norm.value == Approx(acc_norm / n));
  // For 0/1 scores the sample standard error is sqrt(p (1 - p) / (n - 1)).
  const double p = acc / n, pn = acc_norm / n;
  CHECK(r->acc.stderr_ == Approx(std::sqrt(p * (1 - p) / (n - 1))));
  CHECK(r->acc_norm.stderr_ == Approx(std::sqrt(pn * (1 - pn) / (n - 1))));

  opts.limit = 5;
  auto lim = bitsweep::eval::EvaluateChoiceTask(**model, **tok, task, opts);
  REQUIRE(lim.ok());
  CHECK(lim->n == 5);
  CHECK(lim->available == 24);
  CHECK(lim->limited);
  for (int d = 0; d < 5; ++d) CHECK(lim->predictions[d] == r->predictions[d]);
}
