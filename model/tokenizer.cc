// Loading tokenizer.json into the byte-level BPE tokenizer of model/bpe_tokenizer.h: the model's
// vocabulary and merges, the added tokens, the normalizer and the pre-tokenizer, each checked
// against what bitsweep supports, with errors that name the file and the field.
#include "model/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "model/bpe_tokenizer.h"
#include "model/tokenizer_unicode.h"

namespace bitsweep::model {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Ids index tables of (largest id + 1) entries, so a file's ids must stay below twice its number
// of tokens plus this many: Qwen3's ids are dense, and a small file may leave gaps (tens of
// bytes of tables per unused id).
constexpr int64_t kIdGapAllowance = 1 << 16;

// GPT-2's pre-tokenizer, used by a ByteLevel pre-tokenizer with use_regex = true.
constexpr char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

Status FieldError(const std::string& path, const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", field, ": ", what));
}

std::string TypeOf(const json& j) {
  return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>()
                                                                      : "";
}

// A bool field that may be absent (then `def`); anything else but a bool is an error.
StatusOr<bool> BoolField(const json& obj, const char* key, bool def, const std::string& path,
                         const std::string& field) {
  if (!obj.contains(key) || obj[key].is_null()) return def;
  if (!obj[key].is_boolean()) return FieldError(path, field + "." + key, "must be true or false");
  return obj[key].get<bool>();
}

}  // namespace

StatusOr<std::unique_ptr<Tokenizer>> BpeTokenizer::Create(const json& j, const std::string& path) {
  auto t = std::unique_ptr<BpeTokenizer>(new BpeTokenizer());
  if (!j.is_object()) return FieldError(path, "(top level)", "must be a JSON object");
  if (!j.contains("model") || !j["model"].is_object()) {
    return FieldError(path, "model", "is missing (or not an object)");
  }
  const json& m = j["model"];
  // `tokenizers` accepts a model without "type" when its fields are BPE's.
  const std::string type = m.contains("type") ? TypeOf(m) : (m.contains("merges") ? "BPE" : "");
  if (type != "BPE") {
    return FieldError(path, "model.type", "\"" + type + "\" is not supported (only BPE)");
  }
  if (m.contains("dropout") && m["dropout"].is_number() && m["dropout"].get<double>() > 0) {
    return FieldError(path, "model.dropout", "BPE dropout is random; only null or 0 is supported");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (m.contains(key) && !m[key].is_null() && m[key] != "") {
      return FieldError(path, std::string("model.") + key, "only \"\" or null is supported");
    }
  }
  // byte_fallback needs no support: every byte has a symbol (checked below), so BPE never meets
  // a character outside the vocabulary.
  ASSIGN_OR_RETURN(t->ignore_merges_, BoolField(m, "ignore_merges", false, path, "model"));
  if (!m.contains("vocab") || !m["vocab"].is_object()) {
    return FieldError(path, "model.vocab", "is missing or not an object");
  }
  const auto byte_cp = ByteToCodepoint();
  std::unordered_map<int32_t, int> cp_to_byte;
  for (int b = 0; b < 256; ++b) cp_to_byte[static_cast<int32_t>(byte_cp[b])] = b;
  t->byte_to_cp_ = byte_cp;
  // The bytes a token string stands for under the ByteLevel decoder: its characters mapped back
  // through bytes_to_unicode, or, if any character is outside that alphabet, its own UTF-8.
  auto token_bytes = [&cp_to_byte](const std::string& token) {
    std::string bytes;
    size_t i = 0;
    while (i < token.size()) {
      auto it = cp_to_byte.find(NextCodepoint(token, &i));
      if (it == cp_to_byte.end()) return token;
      bytes.push_back(static_cast<char>(it->second));
    }
    return bytes;
  };

  int64_t max_id = -1;
  std::vector<std::pair<int32_t, const std::string*>> entries;
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
    const json& v = it.value();
    if (!v.is_number_integer() || v.get<int64_t>() < 0 ||
        v.get<int64_t>() > std::numeric_limits<int32_t>::max() - 1) {
      return FieldError(path, "model.vocab",
                        "id of \"" + it.key() + "\" is not a non-negative 32-bit integer");
    }
    const int32_t id = v.get<int32_t>();
    entries.push_back({id, &it.key()});
    t->vocab_.emplace(it.key(), id);
    max_id = std::max<int64_t>(max_id, id);
  }

  std::vector<AddedToken> added;
  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    if (!j["added_tokens"].is_array()) return FieldError(path, "added_tokens", "must be a list");
    for (size_t k = 0; k < j["added_tokens"].size(); ++k) {
      const json& a = j["added_tokens"][k];
      const std::string field = absl::StrCat("added_tokens[", k, "]");
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() ||
          a["id"].get<int64_t>() < 0 ||
          a["id"].get<int64_t>() > std::numeric_limits<int32_t>::max() - 1 ||
          !a.contains("content") || !a["content"].is_string() ||
          a["content"].get<std::string>().empty()) {
        return FieldError(path, field, "needs a non-negative integer id and a non-empty content");
      }
      AddedToken tok{a["id"].get<int32_t>(),
                     a["content"].get<std::string>(),
                     false,
                     false,
                     false,
                     false,
                     false};
      ASSIGN_OR_RETURN(tok.special, BoolField(a, "special", false, path, field));
      ASSIGN_OR_RETURN(tok.lstrip, BoolField(a, "lstrip", false, path, field));
      ASSIGN_OR_RETURN(tok.rstrip, BoolField(a, "rstrip", false, path, field));
      ASSIGN_OR_RETURN(tok.single_word, BoolField(a, "single_word", false, path, field));
      // AddedToken::from's default: special tokens are matched in the raw text.
      ASSIGN_OR_RETURN(tok.normalized, BoolField(a, "normalized", !tok.special, path, field));
      max_id = std::max<int64_t>(max_id, tok.id);
      added.push_back(std::move(tok));
    }
  }

  // The id tables below have max_id + 1 entries, so ids must be dense enough: an id of 2^31 - 2
  // would otherwise allocate ~80 GB.
  const int64_t tokens = static_cast<int64_t>(entries.size() + added.size());
  const int64_t id_limit = 2 * tokens + kIdGapAllowance;
  if (max_id >= id_limit) {
    std::string field = "model.vocab", token;
    for (const auto& [id, name] : entries) {
      if (id == max_id) token = *name;
    }
    for (size_t k = 0; k < added.size() && token.empty(); ++k) {
      if (added[k].id == max_id) {
        field = absl::StrCat("added_tokens[", k, "]");
        token = added[k].content;
      }
    }
    return FieldError(
        path, field,
        absl::StrCat("id ", max_id, " of \"", token, "\" is too large for a vocabulary of ", tokens,
                     " tokens (ids must be dense: below 2 x ", tokens, " + ", kIdGapAllowance,
                     " = ", id_limit, ")"));
  }
  t->id_to_bytes_.assign(static_cast<size_t>(max_id + 1), "");
  t->id_known_.assign(static_cast<size_t>(max_id + 1), false);
  std::vector<const std::string*> id_token(static_cast<size_t>(max_id + 1), nullptr);
  for (const auto& [id, token] : entries) {
    if (id_token[id] != nullptr) {
      return FieldError(
          path, "model.vocab",
          absl::StrCat("id ", id, " is used twice (\"", *id_token[id], "\" and \"", *token, "\")"));
    }
    id_token[id] = token;
    t->id_known_[id] = true;
    t->id_to_bytes_[id] = token_bytes(*token);
  }
  for (size_t k = 0; k < added.size(); ++k) {
    const AddedToken& a = added[k];
    const std::string field = absl::StrCat("added_tokens[", k, "]");
    auto in_vocab = t->vocab_.find(a.content);
    if (in_vocab != t->vocab_.end() && in_vocab->second != a.id) {
      return FieldError(path, field,
                        absl::StrCat("\"", a.content, "\" has id ", a.id,
                                     " but model.vocab gives it ", in_vocab->second));
    }
    if (t->added_ids_.count(a.content) != 0) {
      return FieldError(path, field, "\"" + a.content + "\" is listed twice");
    }
    if (t->id_known_[a.id] && in_vocab == t->vocab_.end()) {
      const std::string other = id_token[a.id] != nullptr ? *id_token[a.id] : "another added token";
      return FieldError(
          path, field,
          absl::StrCat("id ", a.id, " is used twice (\"", other, "\" and \"", a.content, "\")"));
    }
    t->id_known_[a.id] = true;
    // `tokenizers` decodes added tokens through the same ByteLevel decoder as the others.
    t->id_to_bytes_[a.id] = token_bytes(a.content);
    t->added_ids_.emplace(a.content, a.id);
  }

  for (int b = 0; b < 256; ++b) {
    std::string sym;
    AppendUtf8(byte_cp[b], &sym);
    auto it = t->vocab_.find(sym);
    if (it == t->vocab_.end()) {
      return FieldError(
          path, "model.vocab",
          absl::StrCat("the byte-level symbol for byte ", b, " (\"", sym, "\") is missing"));
    }
    t->byte_id_[b] = it->second;
  }

  if (m.contains("merges") && !m["merges"].is_null()) {
    if (!m["merges"].is_array()) return FieldError(path, "model.merges", "must be a list");
    int32_t rank = 0;
    for (const auto& mg : m["merges"]) {
      std::string a, b;
      if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
        a = mg[0].get<std::string>();
        b = mg[1].get<std::string>();
      } else if (mg.is_string()) {  // the pre-0.20 "a b" form
        const std::string s = mg.get<std::string>();
        const size_t sp = s.find(' ');
        if (sp == std::string::npos) {
          return FieldError(path, "model.merges",
                            absl::StrCat("entry ", rank, " \"", s, "\" is not \"a b\""));
        }
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else {
        return FieldError(path, "model.merges",
                          absl::StrCat("entry ", rank, " is neither [a, b] nor \"a b\""));
      }
      for (const std::string* name : {&a, &b}) {
        if (t->vocab_.count(*name) == 0) {
          return FieldError(path, "model.merges",
                            absl::StrCat("merge ", rank, " [\"", a, "\", \"", b, "\"] names \"",
                                         *name, "\", which is not in model.vocab"));
        }
      }
      auto merged = t->vocab_.find(a + b);
      if (merged == t->vocab_.end()) {
        return FieldError(path, "model.merges",
                          absl::StrCat("merge ", rank, " [\"", a, "\", \"", b, "\"] makes \"", a, b,
                                       "\", which is not in model.vocab"));
      }
      // A repeated pair takes its last rank, as `tokenizers` collects the list into a map.
      t->merges_.insert_or_assign(Key(t->vocab_[a], t->vocab_[b]),
                                  std::make_pair(rank, merged->second));
      ++rank;
    }
  }

  // Normalizer: null, NFC, or a Sequence of those.
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    const json& n = j["normalizer"];
    std::vector<json> norms;
    if (TypeOf(n) == "Sequence" && n.contains("normalizers") && n["normalizers"].is_array()) {
      norms.assign(n["normalizers"].begin(), n["normalizers"].end());
    } else {
      norms.push_back(n);
    }
    for (const auto& x : norms) {
      if (TypeOf(x) != "NFC") {
        return FieldError(path, "normalizer",
                          "type \"" + TypeOf(x) + "\" is not supported (only NFC, or null)");
      }
      t->nfc_ = true;
    }
  }
  for (size_t k = 0; k < added.size(); ++k) {
    if (added[k].normalized && t->nfc_) added[k].content = Nfc(added[k].content);
  }
  for (bool special : {true, false}) {
    for (size_t k = 0; k < added.size(); ++k) {
      if (added[k].special != special) continue;
      (added[k].normalized ? t->normalized_tokens_ : t->raw_tokens_).push_back(static_cast<int>(k));
    }
  }
  t->added_ = std::move(added);

  // Pre-tokenizer: Sequence[Split(Regex, Isolated), ByteLevel(use_regex=false)] (Qwen2/3), or
  // ByteLevel(use_regex=true) alone (GPT-2).
  if (!j.contains("pre_tokenizer") || j["pre_tokenizer"].is_null()) {
    return FieldError(path, "pre_tokenizer", "is missing (a ByteLevel pre-tokenizer is required)");
  }
  const json& p = j["pre_tokenizer"];
  std::vector<std::pair<json, std::string>> pres;  // step, its field name
  if (TypeOf(p) == "Sequence" && p.contains("pretokenizers") && p["pretokenizers"].is_array()) {
    for (size_t k = 0; k < p["pretokenizers"].size(); ++k) {
      pres.push_back({p["pretokenizers"][k], absl::StrCat("pre_tokenizer.pretokenizers[", k, "]")});
    }
  } else {
    pres.push_back({p, "pre_tokenizer"});
  }
  std::string pattern, pattern_field;
  bool byte_level = false;
  for (const auto& [x, field] : pres) {
    const std::string pt = TypeOf(x);
    if (pt == "Split") {
      if (byte_level) return FieldError(path, field, "a Split after ByteLevel is not supported");
      if (!x.contains("pattern") || !x["pattern"].is_object() || !x["pattern"].contains("Regex") ||
          !x["pattern"]["Regex"].is_string()) {
        return FieldError(path, field + ".pattern", "must be {\"Regex\": \"...\"}");
      }
      if (x.value("behavior", "") != "Isolated" || x.value("invert", false)) {
        return FieldError(path, field, "only behavior \"Isolated\" with invert false is supported");
      }
      if (!pattern.empty()) return FieldError(path, field, "only one Split is supported");
      pattern = x["pattern"]["Regex"].get<std::string>();
      pattern_field = field + ".pattern.Regex";
    } else if (pt == "ByteLevel") {
      if (byte_level) return FieldError(path, field, "ByteLevel appears twice");
      byte_level = true;
      ASSIGN_OR_RETURN(bool prefix, BoolField(x, "add_prefix_space", false, path, field));
      if (prefix) return FieldError(path, field + ".add_prefix_space", "true is not supported");
      ASSIGN_OR_RETURN(bool use_regex, BoolField(x, "use_regex", true, path, field));
      if (use_regex) {
        if (!pattern.empty()) {
          return FieldError(path, field + ".use_regex", "true after a Split is not supported");
        }
        pattern = kGpt2Pattern;
        pattern_field = field + ".use_regex";
      }
    } else {
      return FieldError(path, field,
                        "type \"" + pt + "\" is not supported (only Split and ByteLevel)");
    }
  }
  if (!byte_level) return FieldError(path, "pre_tokenizer", "has no ByteLevel step");

  if (j.contains("decoder") && !j["decoder"].is_null() && TypeOf(j["decoder"]) != "ByteLevel") {
    return FieldError(path, "decoder",
                      "type \"" + TypeOf(j["decoder"]) + "\" is not supported (only ByteLevel)");
  }

  if (!pattern.empty()) {
    const std::string translated = OnigurumaToPcre2(pattern);
    int err = 0;
    PCRE2_SIZE off = 0;
    pcre2_compile_context* ctx = pcre2_compile_context_create(nullptr);
    pcre2_set_newline(ctx, PCRE2_NEWLINE_LF);
    // MULTILINE: in Oniguruma's Ruby syntax ^ and $ are line anchors.
    t->regex_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE | PCRE2_MATCH_INVALID_UTF,
                              &err, &off, ctx);
    pcre2_compile_context_free(ctx);
    if (t->regex_ == nullptr) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      return FieldError(path, pattern_field,
                        absl::StrCat("regex does not compile (PCRE2, at offset ", off, " of \"",
                                     translated, "\"): ", reinterpret_cast<char*>(msg)));
    }
    t->jit_ = pcre2_jit_compile(t->regex_, PCRE2_JIT_COMPLETE) == 0;
  }
  return std::unique_ptr<Tokenizer>(std::move(t));
}

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& path) {
  fs::path file = path;
  std::error_code ec;
  if (fs::is_directory(file, ec)) file /= "tokenizer.json";
  const std::string name = file.string();
  if (!fs::exists(file, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": cannot open: no such file"));
  }
  if (fs::is_directory(file, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": cannot open: is a directory"));
  }
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  if (in) ss << in.rdbuf();
  if (!in || in.bad()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": cannot be read"));
  }
  return FromJson(ss.str(), name);
}

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view json_text,
                                                         const std::string& source) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": invalid JSON: ", e.what()));
  }
  try {
    return BpeTokenizer::Create(j, source);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": malformed field: ", e.what()));
  }
}

}  // namespace bitsweep::model
