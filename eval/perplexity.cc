#include "eval/perplexity.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/python_random.h"
#include "common/wikitext.h"
#include "eval/c4_segments.h"
#include "model/qwen3.h"
#include "model/tokenizer.h"

namespace bitsweep::eval {
namespace {

namespace fs = std::filesystem;

// Tokens per lm_head chunk: bounds the fp32 logits buffer to chunk * vocab floats (about
// 300 MB for Qwen3's 151936-entry vocabulary) whatever the window length.
constexpr int64_t kLogitsChunk = 512;

StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool IsBlank(const std::string& line) {
  for (char c : line) {
    if (!(c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f')) return false;
  }
  return true;
}

// Sum over the batch of -log p(target) for positions [0, T-1) predicting ids[1..T).
// Computed chunk by chunk as logsumexp(logits) - logit[target] in fp32 from logits in the
// model's compute dtype (the study computes cross entropy on the model-dtype logits), by
// ScoreTokens: under tensor parallelism no rank holds the whole vocabulary's logits.
// hidden: the final-normed hidden states of `ids`, [B, T, hidden].
at::Tensor WindowLosses(const model::Qwen3Model& m, const at::Tensor& hidden,
                        const at::Tensor& ids) {
  const int64_t B = ids.size(0), T = ids.size(1);
  at::Tensor sums = at::zeros({B}, hidden.options().dtype(at::kDouble));
  for (int64_t s = 0; s < T - 1; s += kLogitsChunk) {
    const int64_t n = std::min(kLogitsChunk, T - 1 - s);
    const at::Tensor normed = hidden.narrow(1, s, n).reshape({B * n, hidden.size(-1)});
    const at::Tensor targets = ids.narrow(1, s + 1, n).reshape({B * n});
    const model::Qwen3Model::TokenScores scores =
        m.ScoreTokens(normed, at::arange(B * n, at::kLong), targets);
    at::Tensor nll = (scores.logsumexp - scores.target_logit).view({B, n});
    sums += nll.to(at::kDouble).sum(1);
  }
  return sums;
}

}  // namespace

StatusOr<PerplexityResult> EvaluatePerplexity(const model::Qwen3Model& model,
                                              const std::vector<int32_t>& stream,
                                              const PerplexityOptions& options) {
  const int64_t seqlen = options.seqlen;
  if (seqlen < 2) return absl::InvalidArgumentError("seqlen must be at least 2");
  int64_t windows = static_cast<int64_t>(stream.size()) / seqlen;
  if (windows == 0) {
    return absl::InvalidArgumentError(absl::StrCat("the evaluation stream has ", stream.size(),
                                                   " tokens, fewer than one window of ", seqlen));
  }
  if (options.max_windows > 0) windows = std::min(windows, options.max_windows);
  for (size_t i = 0; i < static_cast<size_t>(windows * seqlen); ++i) {
    if (stream[i] < 0 || stream[i] >= model.config().vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", stream[i], " at position ", i,
                                                     " is outside the model's vocabulary of ",
                                                     model.config().vocab_size));
    }
  }
  const auto start = std::chrono::steady_clock::now();
  const int64_t batch = std::max<int64_t>(1, options.batch_size);
  // Windows per group: one batch for a resident model; for a lazy one as many whole batches as
  // the group budget holds (each window's hidden states: seqlen x hidden in the compute dtype).
  int64_t group = batch;
  if (model.lazy()) {
    const int64_t element = model.dtype() == model::ComputeDType::kBFloat16 ? 2 : 4;
    const int64_t window_bytes = seqlen * model.config().hidden_size * element;
    group = std::max<int64_t>(1, options.stream_group_bytes / (window_bytes * batch)) * batch;
  }
  double total = 0;
  try {
    c10::InferenceMode guard;
    at::Tensor all = at::from_blob(const_cast<int32_t*>(stream.data()), {windows, seqlen},
                                   at::kInt)
                         .to(at::kLong);
    const model::RopeTables rope = model.MakeRope(seqlen);
    for (int64_t g = 0; g < windows; g += group) {
      const int64_t end = std::min(windows, g + group);
      std::vector<at::Tensor> ids, hidden;
      for (int64_t w = g; w < end; w += batch) {
        ids.push_back(all.narrow(0, w, std::min(batch, end - w)));
        hidden.push_back(model.Embed(ids.back()));
      }
      RETURN_IF_ERROR(model.RunLayers(hidden, std::vector<model::RopeTables>(hidden.size(), rope)));
      int64_t done = g;
      for (size_t b = 0; b < ids.size(); ++b) {
        at::Tensor sums = WindowLosses(model, model.FinalNorm(hidden[b]), ids[b]);
        hidden[b] = at::Tensor();
        // GPTQ-style: mean loss over seqlen-1 predictions, times seqlen.
        total += (sums / static_cast<double>(seqlen - 1)).sum().item<double>() *
                 static_cast<double>(seqlen);
        done += ids[b].size(0);
        if (options.progress) options.progress(done, windows);
      }
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("perplexity forward: ", e.what_without_backtrace()));
  }
  PerplexityResult r;
  r.windows = windows;
  r.tokens = windows * seqlen;
  r.predictions = windows * (seqlen - 1);
  r.stream_tokens = static_cast<int64_t>(stream.size());
  r.nll = total / static_cast<double>(r.tokens);
  r.ppl = std::exp(r.nll);
  r.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

StatusOr<std::vector<int32_t>> WikiText2TestStream(const model::Tokenizer& tokenizer,
                                                   const std::string& data_dir) {
  const std::string path = data_dir + "/wikitext2/wiki.test.raw";
  ASSIGN_OR_RETURN(std::string raw, ReadFile(path));
  if (raw.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": file is empty"));
  const std::string text = JoinWikiTextRows(raw);
  return tokenizer.Encode(text);
}

StatusOr<std::vector<std::string>> ReadJsonlTexts(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::vector<std::string> texts;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (IsBlank(line)) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", lineno, ": invalid JSON: ", e.what()));
    }
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", lineno, ": expected an object with a string \"text\""));
    }
    texts.push_back(j["text"].get<std::string>());
  }
  if (texts.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no documents"));
  return texts;
}

StatusOr<C4Stream> C4ValidationStream(const model::Tokenizer& tokenizer,
                                      const std::string& data_dir, int64_t seqlen) {
  const fs::path dir = fs::path(data_dir) / "c4";
  std::string file;
  for (const char* name : {"c4-validation.00000-of-00008.json", "c4-validation.00000-of-00008.jsonl"}) {
    if (fs::exists(dir / name)) file = (dir / name).string();
  }
  if (file.empty() && fs::is_directory(dir)) {
    std::vector<std::string> candidates;
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string ext = e.path().extension().string();
      if (e.is_regular_file() && (ext == ".jsonl" || ext == ".json")) {
        candidates.push_back(e.path().string());
      }
    }
    std::sort(candidates.begin(), candidates.end());
    if (!candidates.empty()) file = candidates.front();
  }
  if (file.empty()) {
    return absl::NotFoundError(absl::StrCat(dir.string(), ": no C4 validation JSONL file"));
  }
  ASSIGN_OR_RETURN(std::vector<std::string> docs, ReadJsonlTexts(file));
  C4Stream out;
  out.file = file;
  out.documents = static_cast<int64_t>(docs.size());
  std::unordered_map<int64_t, std::vector<int32_t>> cache;
  auto tokens_of = [&](int64_t doc) -> const std::vector<int32_t>& {
    auto it = cache.find(doc);
    if (it == cache.end()) it = cache.emplace(doc, tokenizer.Encode(docs[doc])).first;
    return it->second;
  };
  auto append = [&](const std::vector<int32_t>& t, int64_t off) {
    const int64_t end = std::min<int64_t>(static_cast<int64_t>(t.size()), off + seqlen);
    if (off < end) out.tokens.insert(out.tokens.end(), t.begin() + off, t.begin() + end);
  };
  if (out.documents == kC4ValidationShardDocs) {
    // Segments can come out short where the Qwen3 tokenisation of a document is shorter than
    // off + seqlen, exactly as in the study; windows are cut from the concatenation.
    out.protocol = "study-segments";
    for (const auto& [doc, off] : kStudyC4Segments) append(tokens_of(doc), off);
    return out;
  }
  out.protocol = "gptq-random-segments";
  PythonRandom rng(0);
  int64_t long_docs = 0;
  for (int k = 0; k < 256; ++k) {
    int64_t doc = 0;
    while (true) {
      doc = rng.RandInt(0, out.documents - 1);
      const int64_t n = static_cast<int64_t>(tokens_of(doc).size());
      if (n > seqlen) {
        ++long_docs;
        break;
      }
      if (long_docs == 0 && static_cast<int64_t>(cache.size()) == out.documents) {
        return absl::InvalidArgumentError(absl::StrCat(
            file, ": no document has more than ", seqlen, " tokens; cannot cut C4 segments"));
      }
    }
    const auto& t = tokens_of(doc);
    const int64_t off = rng.RandInt(0, static_cast<int64_t>(t.size()) - seqlen - 1);
    append(t, off);
  }
  return out;
}

}  // namespace bitsweep::eval
