#include "common/job_spec.h"

#include <openssl/sha.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/mixed_precision.h"
#include "common/utf8.h"

namespace bitsweep {
namespace {

// Debian's Abseil has its own string_view type; public signatures use std::string_view.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

using nlohmann::json;

Status Invalid(std::string_view field, std::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(AV(field), ": ", AV(message)));
}

// Prefixes an error from a callee with the field it concerns.
Status InField(std::string_view field, const Status& s) {
  return absl::Status(s.code(), absl::StrCat(AV(field), ": ", s.message()));
}

// Key values are escaped so that no value can forge a field separator.
void AppendField(std::string& out, std::string_view name, std::string_view value) {
  out += ';';
  out += name;
  out += '=';
  for (char c : value) {
    if (c == '%' || c == ';' || c == '=' || static_cast<unsigned char>(c) < 0x20) {
      static const char* hex = "0123456789abcdef";
      out += '%';
      out += hex[(static_cast<unsigned char>(c) >> 4) & 0xf];
      out += hex[static_cast<unsigned char>(c) & 0xf];
    } else {
      out += c;
    }
  }
}

bool IsDType(const std::string& d) { return d == "fp32" || d == "bf16"; }

}  // namespace

std::string NormalizePath(std::string_view path) {
  std::string p = std::filesystem::path(std::string(path)).lexically_normal().string();
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

bool NeedsCalibration(const QuantConfig& q) {
  auto row = LookupMethod(q.method);
  if (!row.ok() || !(*row)->needs_calibration) return false;
  const char* off = (*row)->no_calibration_option;
  if (*off != '\0') {
    auto it = q.options.find(off);
    if (it != q.options.end()) {
      auto opt = LookupOption(**row, off);
      auto v = NormalizeOptionValue(**opt, it->second);
      if (v.ok() && *v == "true") return false;
    }
  }
  return true;
}

std::string QuantFieldName(std::string_view field, FieldNaming naming) {
  if (naming == FieldNaming::kSpec) return std::string(field);
  static const std::pair<const char*, const char*> kFlags[] = {{"quant.method", "--method"},
                                                               {"quant.wbits", "--wbits"},
                                                               {"quant.abits", "--abits"},
                                                               {"quant.group_size", "--group"}};
  for (const auto& [spec, flag] : kFlags) {
    if (field == spec) return flag;
  }
  // "quant.overrides[1].wbits" -> "--override[1].wbits": the second --override given.
  constexpr std::string_view kOverrides = "quant.overrides";
  if (field.substr(0, kOverrides.size()) == kOverrides) {
    return absl::StrCat("--override", AV(field.substr(kOverrides.size())));
  }
  constexpr std::string_view kOptions = "quant.options.";
  if (field.substr(0, kOptions.size()) == kOptions) {
    const std::string name(field.substr(kOptions.size()));
    for (const MethodOption* o : AllOptions()) {
      if (name == o->name) return OptionFlag(*o);
    }
    return "--" + name;
  }
  return std::string(field);
}

StatusOr<QuantConfig> NormalizeQuantConfig(const QuantConfig& q, FieldNaming naming) {
  auto field = [naming](std::string_view f) { return QuantFieldName(f, naming); };
  auto found = LookupMethod(q.method);
  if (!found.ok()) return InField(field("quant.method"), found.status());
  const MethodInfo& row = **found;
  QuantConfig out;
  out.method = row.name;
  if (q.wbits < row.min_wbits || q.wbits > row.max_wbits) {
    return Invalid(field("quant.wbits"),
                   absl::StrCat(row.name, " takes ", BitsRange(row.min_wbits, row.max_wbits),
                                " weight bits, got ", q.wbits));
  }
  out.wbits = q.wbits;
  if (row.takes_abits) {
    out.abits = q.abits == 0 ? row.default_abits : q.abits;
    if (out.abits < row.min_abits || out.abits > row.max_abits) {
      return Invalid(field("quant.abits"),
                     absl::StrCat(row.name, " takes ", BitsRange(row.min_abits, row.max_abits),
                                  " activation bits, got ", q.abits));
    }
  } else if (q.abits != 0) {
    return Invalid(field("quant.abits"),
                   absl::StrCat(row.name, " does not quantize activations (abits ", q.abits, ")"));
  }
  if (q.group_size != -1 && q.group_size <= 0) {
    return Invalid(field("quant.group_size"),
                   absl::StrCat("must be -1 (per channel) or positive, got ", q.group_size));
  }
  if (!row.group_size_applies && q.group_size != -1) {
    return Invalid(
        field("quant.group_size"),
        absl::StrCat(row.name, " has no group size (it ", row.group_note, "), got ", q.group_size));
  }
  out.group_size = q.group_size;
  for (const auto& [name, value] : q.options) {
    const std::string f = field(absl::StrCat("quant.options.", name));
    auto opt = LookupOption(row, name);
    if (!opt.ok()) return InField(f, opt.status());
    auto v = NormalizeOptionValue(**opt, value);
    if (!v.ok()) return InField(f, v.status());
    out.options[name] = *v;
  }
  for (const MethodOption* o : row.options) out.options.emplace(o->name, o->default_value);
  for (const MethodOption* o : row.options) {
    if (*o->requires_option != '\0' && out.options[o->name] == "true" &&
        out.options[o->requires_option] != "true") {
      return Invalid(field(absl::StrCat("quant.options.", o->name)),
                     absl::StrCat("needs ", o->requires_option, ": true"));
    }
  }
  // A method that then quantizes per channel whatever the group says (RTN's released code,
  // README): every group size names the same artifact.
  if (*row.per_channel_option != '\0' && out.options[row.per_channel_option] == "true") {
    out.group_size = -1;
  }
  out.overrides = q.overrides;
  RETURN_IF_ERROR(CanonicalizeOverrides(row, &out, field));
  return out;
}

StatusOr<EvalConfig> NormalizeEvalConfig(const EvalConfig& eval) {
  EvalConfig e = eval;
  auto task = LookupTask(e.task);
  if (!task.ok()) return InField("eval.task", task.status());
  e.task = std::string_view((*task)->name) == "file" ? NormalizePath(e.task) : (*task)->name;
  if (e.limit < 0) return Invalid("eval.limit", "must be 0 (all) or positive");
  if (e.num_fewshot == -1) e.num_fewshot = (*task)->default_num_fewshot;
  if (e.num_fewshot < 0) return Invalid("eval.num_fewshot", "must be non-negative");
  if ((*task)->kind == TaskKind::kPerplexity) {
    if (e.num_fewshot != 0) return Invalid("eval.num_fewshot", "perplexity tasks take no shots");
    if (e.seqlen < 2) return Invalid("eval.seqlen", "must be at least 2");
  } else {
    e.seqlen = 0;  // the window length means nothing to choice tasks
  }
  if (e.batch_size < 1) return Invalid("eval.batch_size", "must be positive");
  if (!IsDType(e.dtype)) {
    return Invalid("eval.dtype", absl::StrCat("fp32 or bf16, got \"", e.dtype, "\""));
  }
  return e;
}

std::string RunTagProblem(std::string_view tag) {
  if (tag.empty()) return "empty";
  if (tag.size() > kMaxRunTagBytes) {
    return absl::StrCat("is ", tag.size(), " characters; at most ", kMaxRunTagBytes);
  }
  for (char c : tag) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' &&
        c != '-') {
      return "may hold only letters, digits, '.', '_' and '-'";
    }
  }
  return "";
}

bool IsValidRunTag(std::string_view tag) { return RunTagProblem(tag).empty(); }

StatusOr<JobSpec> NormalizeJobSpec(const JobSpec& spec) {
  JobSpec out;
  if (spec.model.empty()) return Invalid("model", "empty path");
  out.model = NormalizePath(spec.model);
  if (!spec.run_tag.empty()) {
    const std::string problem = RunTagProblem(spec.run_tag);
    if (!problem.empty()) return Invalid("run_tag", problem);
    out.run_tag = spec.run_tag;
  }
  ASSIGN_OR_RETURN(out.quant, NormalizeQuantConfig(spec.quant));
  const MethodInfo& row = **LookupMethod(out.quant.method);
  if (NeedsCalibration(out.quant)) {
    CalibrationConfig c = spec.calibration.value_or(CalibrationConfig{});
    const CalibrationDefaults& d = row.calibration;
    if (c.source.empty()) c.source = d.source;
    if (c.source != "c4" && c.source != "wikitext2") c.source = NormalizePath(c.source);
    if (c.nsamples == 0) c.nsamples = d.nsamples;
    if (c.seqlen == 0) c.seqlen = d.seqlen;
    if (c.seed == -1) c.seed = d.seed;
    if (c.nsamples < 0) return Invalid("calibration.nsamples", "must be positive");
    if (c.seqlen < 2) return Invalid("calibration.seqlen", "must be at least 2");
    if (c.seed < 0) return Invalid("calibration.seed", "must be non-negative");
    if (!IsDType(c.dtype)) {
      return Invalid("calibration.dtype", absl::StrCat("fp32 or bf16, got \"", c.dtype, "\""));
    }
    out.calibration = c;
  }

  ASSIGN_OR_RETURN(out.eval, NormalizeEvalConfig(spec.eval));

  out.priority = spec.priority;
  if (spec.max_attempts < 1) return Invalid("max_attempts", "must be at least 1");
  out.max_attempts = spec.max_attempts;
  const Resources& r = spec.resources;
  if (r.devices < 1) return Invalid("resources.devices", "must be at least 1");
  if (r.tp < 1 || r.tp > r.devices) {
    return Invalid("resources.tp",
                   absl::StrCat("must be in 1..devices (", r.devices, "), got ", r.tp));
  }
  if (!(r.memory_gb >= 0) || !std::isfinite(r.memory_gb)) {
    return Invalid("resources.memory_gb", "must be a non-negative number");
  }
  out.resources = r;
  // Specs are stored and sent as JSON, which holds only UTF-8 (JobSpecToJson would throw).
  std::vector<std::pair<std::string, const std::string*>> texts = {{"model", &out.model},
                                                                   {"eval.task", &out.eval.task}};
  if (out.calibration) texts.push_back({"calibration.source", &out.calibration->source});
  for (const auto& [key, value] : out.quant.options) {
    texts.push_back({absl::StrCat("quant.options.", key), &value});
  }
  for (const auto& [field, text] : texts) {
    const size_t bad = FirstInvalidUtf8(*text);
    if (bad != text->size() || !IsValidUtf8(field)) {
      return Invalid(IsValidUtf8(field) ? field : "quant.options",
                     absl::StrCat("is not valid UTF-8 (byte ", bad, ")"));
    }
  }
  return out;
}

std::string JobSpec::ArtifactKey() const {
  std::string key = "artifact/v1";
  AppendField(key, "model", model);
  AppendField(key, "method", quant.method);
  if (!run_tag.empty()) AppendField(key, "run_tag", run_tag);  // absent: the untagged key
  if (quant.method == "fp") return key;
  AppendField(key, "wbits", absl::StrCat(quant.wbits));
  AppendField(key, "abits", absl::StrCat(quant.abits));
  AppendField(key, "group", absl::StrCat(quant.group_size));
  for (const auto& [name, value] : quant.options) AppendField(key, "opt." + name, value);
  // Absent for a uniform recipe, so its key is the one it always had.
  if (!quant.overrides.empty()) AppendField(key, "overrides", OverridesText(quant.overrides));
  if (calibration) {
    AppendField(key, "calib.source", calibration->source);
    AppendField(key, "calib.nsamples", absl::StrCat(calibration->nsamples));
    AppendField(key, "calib.seqlen", absl::StrCat(calibration->seqlen));
    AppendField(key, "calib.seed", absl::StrCat(calibration->seed));
    AppendField(key, "calib.dtype", calibration->dtype);
  }
  return key;
}

std::string EvalKey(const EvalConfig& eval) {
  std::string key = "eval/v1";
  AppendField(key, "task", eval.task);
  AppendField(key, "limit", absl::StrCat(eval.limit));
  AppendField(key, "num_fewshot", absl::StrCat(eval.num_fewshot));
  AppendField(key, "seqlen", absl::StrCat(eval.seqlen));
  AppendField(key, "batch_size", absl::StrCat(eval.batch_size));
  AppendField(key, "dtype", eval.dtype);
  return key;
}

std::string JobSpec::JobKey() const { return absl::StrCat(ArtifactKey(), "|", EvalKey(eval)); }

std::string DescribeQuant(const QuantConfig& q) {
  if (q.method == "fp") return "fp";
  std::string s = absl::StrCat(q.method, " w", q.wbits);
  if (q.abits != 0) absl::StrAppend(&s, "a", q.abits);
  if (q.group_size != -1) absl::StrAppend(&s, " g", q.group_size);
  auto row = LookupMethod(q.method);
  for (const auto& [name, value] : q.options) {
    bool is_default = false;
    if (row.ok()) {
      auto opt = LookupOption(**row, name);
      is_default = opt.ok() && value == (*opt)->default_value;
    }
    if (!is_default) absl::StrAppend(&s, " ", name, "=", value);
  }
  if (!q.overrides.empty()) absl::StrAppend(&s, " ", OverridesText(q.overrides));
  return s;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(2 * SHA256_DIGEST_LENGTH);
  for (unsigned char b : md) {
    out += hex[b >> 4];
    out += hex[b & 0xf];
  }
  return out;
}

// ---- JSON ----------------------------------------------------------------------------------

std::string JobSpecToJson(const JobSpec& s) {
  json j;
  j["model"] = s.model;
  if (!s.run_tag.empty()) j["run_tag"] = s.run_tag;  // absent when none, as before tags
  j["quant"] = {{"method", s.quant.method},
                {"wbits", s.quant.wbits},
                {"abits", s.quant.abits},
                {"group_size", s.quant.group_size},
                {"options", s.quant.options}};
  if (!s.quant.overrides.empty()) {  // absent when uniform: the JSON of such specs is unchanged
    json list = json::array();
    for (const QuantOverride& o : s.quant.overrides) {
      json e = json::object();
      if (!o.layers.empty()) e["layers"] = o.layers;
      if (!o.linear.empty()) e["linear"] = o.linear;
      if (o.wbits != 0) e["wbits"] = o.wbits;
      if (o.group_size != 0) e["group_size"] = o.group_size;
      list.push_back(e);
    }
    j["quant"]["overrides"] = list;
  }
  if (s.calibration) {
    const CalibrationConfig& c = *s.calibration;
    j["calibration"] = {{"source", c.source},
                        {"nsamples", c.nsamples},
                        {"seqlen", c.seqlen},
                        {"seed", c.seed},
                        {"dtype", c.dtype}};
  } else {
    j["calibration"] = nullptr;
  }
  j["eval"] = {{"task", s.eval.task},
               {"limit", s.eval.limit},
               {"num_fewshot", s.eval.num_fewshot},
               {"seqlen", s.eval.seqlen},
               {"batch_size", s.eval.batch_size},
               {"dtype", s.eval.dtype}};
  j["priority"] = s.priority;
  j["max_attempts"] = s.max_attempts;
  j["resources"] = {{"devices", s.resources.devices},
                    {"memory_gb", s.resources.memory_gb},
                    {"tp", s.resources.tp}};
  return j.dump();
}

namespace {

// Reads the fields of one JSON object, naming each by its dotted path in errors and refusing
// fields it was not asked about.
class ObjectReader {
 public:
  ObjectReader(const json& j, std::string path) : j_(j), path_(std::move(path)) {}

  Status CheckObject() const {
    if (!j_.is_object()) return Invalid(path_.empty() ? "spec" : path_, "expected an object");
    return absl::OkStatus();
  }
  std::string Field(std::string_view key) const {
    return path_.empty() ? std::string(key) : absl::StrCat(path_, ".", AV(key));
  }
  const json* Get(const char* key) {
    seen_.insert(key);
    auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  template <typename T>
  Status Int(const char* key, T* out) {
    const json* v = Get(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_number_integer()) return Invalid(Field(key), "expected an integer");
    if (v->is_number_unsigned() ? v->get<uint64_t>() > uint64_t{std::numeric_limits<T>::max()}
                                : v->get<int64_t>() < std::numeric_limits<T>::min() ||
                                      v->get<int64_t>() > std::numeric_limits<T>::max()) {
      return Invalid(Field(key), "integer out of range");
    }
    *out = static_cast<T>(v->get<int64_t>());
    return absl::OkStatus();
  }
  Status Double(const char* key, double* out) {
    const json* v = Get(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_number()) return Invalid(Field(key), "expected a number");
    *out = v->get<double>();
    return absl::OkStatus();
  }
  Status String(const char* key, std::string* out) {
    const json* v = Get(key);
    if (v == nullptr) return absl::OkStatus();
    if (!v->is_string()) return Invalid(Field(key), "expected a string");
    *out = v->get<std::string>();
    return absl::OkStatus();
  }
  Status NoOthers() const {
    for (auto it = j_.begin(); it != j_.end(); ++it) {
      if (seen_.count(it.key()) == 0) return Invalid(Field(it.key()), "unknown field");
    }
    return absl::OkStatus();
  }

 private:
  const json& j_;
  std::string path_;
  std::set<std::string> seen_;
};

StatusOr<JobSpec> FromJsonImpl(const json& root) {
  JobSpec s;
  ObjectReader r(root, "");
  RETURN_IF_ERROR(r.CheckObject());
  RETURN_IF_ERROR(r.String("model", &s.model));
  RETURN_IF_ERROR(r.String("run_tag", &s.run_tag));
  if (const json* q = r.Get("quant")) {
    ObjectReader qr(*q, "quant");
    RETURN_IF_ERROR(qr.CheckObject());
    RETURN_IF_ERROR(qr.String("method", &s.quant.method));
    RETURN_IF_ERROR(qr.Int("wbits", &s.quant.wbits));
    RETURN_IF_ERROR(qr.Int("abits", &s.quant.abits));
    RETURN_IF_ERROR(qr.Int("group_size", &s.quant.group_size));
    if (const json* o = qr.Get("options")) {
      if (!o->is_object()) return Invalid("quant.options", "expected an object");
      for (auto it = o->begin(); it != o->end(); ++it) {
        s.quant.options[it.key()] =
            it->is_string() ? it->get<std::string>() : it->dump();  // true, 20, 0.5 as text
      }
    }
    if (const json* o = qr.Get("overrides")) {
      if (!o->is_array()) return Invalid("quant.overrides", "expected a list");
      for (size_t i = 0; i < o->size(); ++i) {
        QuantOverride ov;
        ObjectReader orr((*o)[i], absl::StrCat("quant.overrides[", i, "]"));
        RETURN_IF_ERROR(orr.CheckObject());
        if (const json* l = orr.Get("layers"); l != nullptr && l->is_number_integer()) {
          ov.layers = l->dump();  // layers: 5
        } else {
          RETURN_IF_ERROR(orr.String("layers", &ov.layers));
        }
        RETURN_IF_ERROR(orr.String("linear", &ov.linear));
        RETURN_IF_ERROR(orr.Int("wbits", &ov.wbits));
        RETURN_IF_ERROR(orr.Int("group_size", &ov.group_size));
        RETURN_IF_ERROR(orr.NoOthers());
        s.quant.overrides.push_back(std::move(ov));
      }
    }
    RETURN_IF_ERROR(qr.NoOthers());
  }
  if (const json* c = r.Get("calibration")) {
    CalibrationConfig cc;
    ObjectReader cr(*c, "calibration");
    RETURN_IF_ERROR(cr.CheckObject());
    RETURN_IF_ERROR(cr.String("source", &cc.source));
    RETURN_IF_ERROR(cr.Int("nsamples", &cc.nsamples));
    RETURN_IF_ERROR(cr.Int("seqlen", &cc.seqlen));
    RETURN_IF_ERROR(cr.Int("seed", &cc.seed));
    RETURN_IF_ERROR(cr.String("dtype", &cc.dtype));
    RETURN_IF_ERROR(cr.NoOthers());
    s.calibration = cc;
  }
  if (const json* e = r.Get("eval")) {
    ObjectReader er(*e, "eval");
    RETURN_IF_ERROR(er.CheckObject());
    RETURN_IF_ERROR(er.String("task", &s.eval.task));
    RETURN_IF_ERROR(er.Int("limit", &s.eval.limit));
    RETURN_IF_ERROR(er.Int("num_fewshot", &s.eval.num_fewshot));
    RETURN_IF_ERROR(er.Int("seqlen", &s.eval.seqlen));
    RETURN_IF_ERROR(er.Int("batch_size", &s.eval.batch_size));
    RETURN_IF_ERROR(er.String("dtype", &s.eval.dtype));
    RETURN_IF_ERROR(er.NoOthers());
  }
  RETURN_IF_ERROR(r.Int("priority", &s.priority));
  RETURN_IF_ERROR(r.Int("max_attempts", &s.max_attempts));
  if (const json* res = r.Get("resources")) {
    ObjectReader rr(*res, "resources");
    RETURN_IF_ERROR(rr.CheckObject());
    RETURN_IF_ERROR(rr.Int("devices", &s.resources.devices));
    RETURN_IF_ERROR(rr.Double("memory_gb", &s.resources.memory_gb));
    RETURN_IF_ERROR(rr.Int("tp", &s.resources.tp));
    RETURN_IF_ERROR(rr.NoOthers());
  }
  RETURN_IF_ERROR(r.NoOthers());
  return NormalizeJobSpec(s);
}

}  // namespace

StatusOr<JobSpec> JobSpecFromJson(std::string_view text) {
  try {
    return FromJsonImpl(json::parse(text));
  } catch (const json::exception& e) {
    // Parse errors carry the byte offset; type errors (an int that does not fit) name the type.
    return absl::InvalidArgumentError(absl::StrCat("job spec JSON: ", e.what()));
  }
}

}  // namespace bitsweep
