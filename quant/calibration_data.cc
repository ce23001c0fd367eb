#include "quant/calibration_data.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/python_random.h"
#include "common/wikitext.h"
#include "model/tokenizer.h"

namespace bitsweep::quant {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

StatusOr<std::string> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open calibration file"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

StatusOr<std::vector<std::string>> ReadDocuments(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open calibration file"));
  std::vector<std::string> docs;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      json j = json::parse(line);
      if (!j.is_object() || !j.contains("text") || !j["text"].is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ":", lineno, ": expected an object with a string \"text\""));
      }
      docs.push_back(j["text"].get<std::string>());
    } catch (const json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", lineno, ": invalid JSON: ", e.what()));
    }
  }
  if (docs.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no documents"));
  return docs;
}

// GPTQ's get_c4: documents with more than seqlen tokens, random offsets.
StatusOr<CalibrationSet> FromDocuments(const std::string& path, const CalibrationSpec& spec,
                                       const model::Tokenizer& tok) {
  ASSIGN_OR_RETURN(std::vector<std::string> docs, ReadDocuments(path));
  PythonRandom rng(spec.seed);
  std::unordered_map<int64_t, std::vector<int32_t>> cache;
  int64_t long_docs = 0;
  CalibrationSet out;
  const int64_t n = static_cast<int64_t>(docs.size());
  for (int64_t k = 0; k < spec.nsamples; ++k) {
    const std::vector<int32_t>* ids = nullptr;
    while (true) {
      const int64_t i = rng.RandInt(0, n - 1);
      auto it = cache.find(i);
      if (it == cache.end()) it = cache.emplace(i, tok.Encode(docs[i])).first;
      if (static_cast<int64_t>(it->second.size()) > spec.seqlen) {
        ids = &it->second;
        ++long_docs;
        break;
      }
      if (long_docs == 0 && static_cast<int64_t>(cache.size()) == n) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": no document has more than ", spec.seqlen, " tokens (--seqlen)"));
      }
    }
    const int64_t off = rng.RandInt(0, static_cast<int64_t>(ids->size()) - spec.seqlen - 1);
    out.samples.emplace_back(ids->begin() + off, ids->begin() + off + spec.seqlen);
  }
  out.description = absl::StrCat(path, " (GPTQ c4 procedure, seed ", spec.seed, ")");
  return out;
}

// llm-awq's get_calib_dataset: short documents concatenated and cut into blocks.
StatusOr<CalibrationSet> AwqBlocks(const std::string& path, const CalibrationSpec& spec,
                                   const model::Tokenizer& tok) {
  ASSIGN_OR_RETURN(std::vector<std::string> docs, ReadDocuments(path));
  std::vector<int64_t> order(docs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  PythonRandom rng(spec.seed);
  // random.shuffle: for i in reversed(range(1, n)): j = randbelow(i + 1); swap.
  for (int64_t i = static_cast<int64_t>(order.size()) - 1; i > 0; --i) {
    std::swap(order[i], order[rng.RandInt(0, i)]);
  }
  std::vector<int32_t> all;
  int64_t kept = 0;
  for (int64_t i : order) {
    if (kept == spec.nsamples) break;
    const std::string& d = docs[i];
    const size_t b = d.find_first_not_of(" \t\n\r\f\v");
    if (b == std::string::npos) continue;
    const size_t e = d.find_last_not_of(" \t\n\r\f\v");
    const std::vector<int32_t> ids = tok.Encode(d.substr(b, e - b + 1));
    if (ids.empty() || static_cast<int64_t>(ids.size()) > spec.seqlen) continue;
    all.insert(all.end(), ids.begin(), ids.end());
    ++kept;
  }
  const int64_t blocks = static_cast<int64_t>(all.size()) / spec.seqlen;
  if (blocks == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": the documents with at most ", spec.seqlen, " tokens hold fewer than ",
        spec.seqlen, " tokens in all (--seqlen)"));
  }
  CalibrationSet out;
  for (int64_t k = 0; k < blocks; ++k) {
    out.samples.emplace_back(all.begin() + k * spec.seqlen, all.begin() + (k + 1) * spec.seqlen);
  }
  out.description = absl::StrCat(path, " (llm-awq procedure: ", kept, " documents of <= ",
                                 spec.seqlen, " tokens, shuffled with seed ", spec.seed, ", ",
                                 blocks, " blocks)");
  return out;
}

// GPTQ's get_wikitext2 train loader: random windows of one token stream.
StatusOr<CalibrationSet> FromStream(const std::string& path, const std::string& text,
                                    const CalibrationSpec& spec, const model::Tokenizer& tok) {
  const std::vector<int32_t> ids = tok.Encode(text);
  if (static_cast<int64_t>(ids.size()) <= spec.seqlen + 1) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": only ", ids.size(),
                                                   " tokens, need more than seqlen + 1"));
  }
  PythonRandom rng(spec.seed);
  CalibrationSet out;
  for (int64_t k = 0; k < spec.nsamples; ++k) {
    const int64_t i = rng.RandInt(0, static_cast<int64_t>(ids.size()) - spec.seqlen - 1);
    out.samples.emplace_back(ids.begin() + i, ids.begin() + i + spec.seqlen);
  }
  out.description = absl::StrCat(path, " (GPTQ wikitext2 procedure, seed ", spec.seed, ")");
  return out;
}

}  // namespace

StatusOr<CalibrationSet> LoadCalibration(const CalibrationSpec& spec,
                                         const model::Tokenizer& tokenizer) {
  if (spec.nsamples <= 0) return absl::InvalidArgumentError("nsamples must be positive");
  if (spec.seqlen < 2) return absl::InvalidArgumentError("seqlen must be at least 2");
  const std::string& s = spec.source;
  if (s == "c4") {
    const fs::path dir = fs::path(spec.data_dir) / "c4";
    std::vector<std::string> files;
    if (fs::is_directory(dir)) {
      for (const auto& e : fs::directory_iterator(dir)) {
        const std::string name = e.path().filename().string();
        if (name.rfind("c4-train", 0) == 0) files.push_back(e.path().string());
      }
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) {
      return absl::NotFoundError(absl::StrCat(
          dir.string(), ": no C4 training file (c4-train.*.json); calibrating on the C4 "
                        "validation documents would leak into the C4 evaluation, so pass "
                        "--calib with a JSONL/text file or a JSON file of token ids"));
    }
    if (spec.procedure == SamplingProcedure::kAwqBlocks) {
      return AwqBlocks(files.front(), spec, tokenizer);
    }
    return FromDocuments(files.front(), spec, tokenizer);
  }
  if (s == "wikitext2") {
    const std::string path = spec.data_dir + "/wikitext2/wiki.train.raw";
    ASSIGN_OR_RETURN(std::string raw, ReadAll(path));
    return FromStream(path, JoinWikiTextRows(raw), spec, tokenizer);
  }
  const std::string ext = fs::path(s).extension().string();
  if (ext == ".json") {
    ASSIGN_OR_RETURN(std::string text, ReadAll(s));
    CalibrationSet out;
    try {
      json j = json::parse(text);
      out.samples = j.get<std::vector<std::vector<int32_t>>>();
    } catch (const json::exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat(s, ": expected a JSON array of arrays of token ids: ", e.what()));
    }
    if (out.samples.empty()) return absl::InvalidArgumentError(absl::StrCat(s, ": no samples"));
    for (size_t i = 0; i < out.samples.size(); ++i) {
      if (out.samples[i].size() < 2) {
        return absl::InvalidArgumentError(absl::StrCat(s, ": sample ", i, " has fewer than 2 tokens"));
      }
      for (int32_t id : out.samples[i]) {
        if (id < 0 || id >= tokenizer.VocabSize()) {
          return absl::InvalidArgumentError(
              absl::StrCat(s, ": sample ", i, ": token id ", id, " is outside the vocabulary"));
        }
      }
    }
    out.description = absl::StrCat(s, " (explicit token ids)");
    return out;
  }
  if (ext == ".jsonl") {
    if (spec.procedure == SamplingProcedure::kAwqBlocks) return AwqBlocks(s, spec, tokenizer);
    return FromDocuments(s, spec, tokenizer);
  }
  if (!fs::exists(s)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "calibration source \"", s, "\" is neither c4, wikitext2 nor an existing file"));
  }
  ASSIGN_OR_RETURN(std::string text, ReadAll(s));
  return FromStream(s, text, spec, tokenizer);
}

}  // namespace bitsweep::quant
