#include "eval/run_task.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/catalog.h"
#include "eval/loglikelihood.h"
#include "eval/mmlu.h"
#include "eval/perplexity.h"
#include "eval/tasks.h"
#include "model/qwen3.h"
#include "model/tokenizer.h"

namespace bitsweep::eval {

using nlohmann::json;

namespace {

json GroupJson(const MmluGroup& g) {
  return {{"acc", g.acc.value}, {"stderr", g.acc.stderr_}, {"n", g.n}};
}

// The token stream of each perplexity row of the task catalog (common/catalog.cc), by name;
// `extra` receives what the result should say of the protocol used.
using StreamLoader = StatusOr<std::vector<int32_t>> (*)(const model::Tokenizer&,
                                                        const TaskSettings&, json* extra);

StatusOr<std::vector<int32_t>> WikiText2(const model::Tokenizer& tokenizer, const TaskSettings& s,
                                         json*) {
  return WikiText2TestStream(tokenizer, s.data_dir);
}

StatusOr<std::vector<int32_t>> C4(const model::Tokenizer& tokenizer, const TaskSettings& s,
                                  json* extra) {
  ASSIGN_OR_RETURN(auto c4, C4ValidationStream(tokenizer, s.data_dir, s.seqlen));
  (*extra)["protocol"] = c4.protocol;
  (*extra)["file"] = c4.file;
  return std::move(c4.tokens);
}

const std::pair<const char*, StreamLoader> kPerplexityStreams[] = {{"wikitext2", &WikiText2},
                                                                   {"c4", &C4}};

StatusOr<TaskOutcome> RunPerplexityTask(const TaskSettings& s, const model::Qwen3Model& model,
                                        const model::Tokenizer& tokenizer) {
  const std::string& task = s.task;
  json extra = json::object();
  StatusOr<std::vector<int32_t>> stream =
      absl::InvalidArgumentError("no token stream for perplexity task \"" + task + "\"");
  for (const auto& [name, load] : kPerplexityStreams) {
    if (task == name) stream = load(tokenizer, s, &extra);
  }
  if (!stream.ok()) return stream.status();
  PerplexityOptions po;
  po.seqlen = s.seqlen;
  po.max_windows = s.max_windows;
  po.batch_size = s.ppl_batch_size;
  po.stream_group_bytes = s.stream_group_bytes;
  po.progress = s.progress;
  ASSIGN_OR_RETURN(auto r, EvaluatePerplexity(model, *stream, po));
  json j = {{"task", task},
            {"ppl", r.ppl},
            {"nll", r.nll},
            {"windows", r.windows},
            {"tokens", r.tokens},
            {"predictions", r.predictions},
            {"stream_tokens", r.stream_tokens},
            {"seqlen", s.seqlen},
            {"seconds", r.seconds},
            {"tokens_per_second", r.tokens / std::max(r.seconds, 1e-9)}};
  j.update(extra);
  TaskOutcome out;
  out.metrics.push_back({"ppl", r.ppl, 0.0, r.windows});
  {
    absl::StrAppendFormat(
        &out.summary,
        "%-13s ppl %10.4f  nll %.6f  windows %lld  tokens %lld  (%.1fs, %.0f tok/s)\n",
        task.c_str(), r.ppl, r.nll, static_cast<long long>(r.windows),
        static_cast<long long>(r.tokens), r.seconds, r.tokens / std::max(r.seconds, 1e-9));
  }
  out.task = j["task"];
  out.json = j.dump();
  return out;
}

LoglikelihoodOptions EngineOptions(const TaskSettings& s) {
  LoglikelihoodOptions o;
  o.batch_size = s.batch_size;
  o.prefix_reuse = s.prefix_reuse;
  o.stream_group_bytes = s.stream_group_bytes;
  return o;
}

json EngineJson(const LoglikelihoodRun& e) {
  return {{"forwards", e.forwards}, {"tokens", e.tokens}, {"padded_tokens", e.padded_tokens}};
}

StatusOr<TaskOutcome> RunChoiceTask(const TaskSettings& s, const model::Qwen3Model& model,
                                    const model::Tokenizer& tokenizer) {
  ASSIGN_OR_RETURN(auto data, LoadChoiceTask(s.task, s.data_dir));
  ChoiceTaskOptions o;
  o.limit = s.limit;
  o.engine = EngineOptions(s);
  o.engine.progress = s.progress;
  ASSIGN_OR_RETURN(auto r, EvaluateChoiceTask(model, tokenizer, data, o));
  json stderr_j = {{"acc", r.acc.stderr_}};
  json j = {{"task", data.name}, {"acc", r.acc.value}};
  if (r.has_acc_norm) {
    j["acc_norm"] = r.acc_norm.value;
    stderr_j["acc_norm"] = r.acc_norm.stderr_;
  }
  j["stderr"] = stderr_j;
  j["n"] = r.n;
  j["available"] = r.available;
  j["limited"] = r.limited;
  if (r.limited) j["limit"] = s.limit;
  j["num_fewshot"] = 0;
  j["source"] = data.source;
  if (!data.note.empty()) j["note"] = data.note;
  j["seconds"] = r.engine.seconds;
  j["engine"] = EngineJson(r.engine);
  TaskOutcome out;
  out.metrics.push_back({"acc", r.acc.value, r.acc.stderr_, r.n});
  if (r.has_acc_norm)
    out.metrics.push_back({"acc_norm", r.acc_norm.value, r.acc_norm.stderr_, r.n});
  {
    absl::StrAppendFormat(&out.summary, "%-13s acc %.4f ± %.4f", data.name.c_str(), r.acc.value,
                          r.acc.stderr_);
    if (r.has_acc_norm)
      absl::StrAppendFormat(&out.summary, "  acc_norm %.4f ± %.4f", r.acc_norm.value,
                            r.acc_norm.stderr_);
    absl::StrAppendFormat(&out.summary, "  n %lld", static_cast<long long>(r.n));
    if (r.limited)
      absl::StrAppendFormat(&out.summary, " (--limit: first %lld of %lld)",
                            static_cast<long long>(r.n), static_cast<long long>(r.available));
    absl::StrAppendFormat(&out.summary, "  (%.1fs)\n", r.engine.seconds);
    if (!data.note.empty())
      absl::StrAppendFormat(&out.summary, "%-13s note: %s\n", "", data.note.c_str());
  }
  out.task = j["task"];
  out.json = j.dump();
  return out;
}

StatusOr<TaskOutcome> RunMmluTask(const TaskSettings& s, const model::Qwen3Model& model,
                                  const model::Tokenizer& tokenizer) {
  const std::string& data_dir = s.data_dir;
  MmluOptions o;
  o.ntrain = s.num_fewshot;
  o.limit = s.limit;
  o.engine = EngineOptions(s);
  o.engine.progress = s.progress;
  ASSIGN_OR_RETURN(auto r, EvaluateMmlu(model, tokenizer, data_dir, o));
  json j = {{"task", "mmlu"},
            {"acc", r.overall.acc.value},
            {"stderr", {{"acc", r.overall.acc.stderr_}}},
            {"n", r.n},
            {"available", r.available},
            {"limited", r.limited},
            {"num_fewshot", s.num_fewshot},
            {"shots_reduced", r.shots_reduced}};
  if (r.limited) j["limit"] = s.limit;
  json cats = json::object(), subcats = json::object(), subjects = json::object();
  for (const auto& [k, v] : r.categories) cats[k] = GroupJson(v);
  for (const auto& [k, v] : r.subcategories) subcats[k] = GroupJson(v);
  for (const auto& [k, v] : r.subjects) subjects[k] = GroupJson(v);
  j["categories"] = cats;
  j["subcategories"] = subcats;
  j["subjects"] = subjects;
  j["seconds"] = r.engine.seconds;
  j["engine"] = EngineJson(r.engine);
  TaskOutcome out;
  out.metrics.push_back({"acc", r.overall.acc.value, r.overall.acc.stderr_, r.n});
  for (const auto& [k, v] : r.categories) {
    out.metrics.push_back({"acc/category/" + k, v.acc.value, v.acc.stderr_, v.n});
  }
  for (const auto& [k, v] : r.subjects) {
    out.metrics.push_back({"acc/subject/" + k, v.acc.value, v.acc.stderr_, v.n});
  }
  {
    absl::StrAppendFormat(&out.summary, "%-13s acc %.4f ± %.4f  n %lld", "mmlu",
                          r.overall.acc.value, r.overall.acc.stderr_, static_cast<long long>(r.n));
    if (r.limited)
      absl::StrAppendFormat(&out.summary, " (--limit: first %lld questions of each subject)",
                            static_cast<long long>(s.limit));
    absl::StrAppendFormat(&out.summary, "  (%.1fs)\n", r.engine.seconds);
    for (const auto& [k, v] : r.categories) {
      absl::StrAppendFormat(&out.summary, "  %-32s acc %.4f ± %.4f  n %lld\n", k.c_str(),
                            v.acc.value, v.acc.stderr_, static_cast<long long>(v.n));
    }
  }
  out.task = j["task"];
  out.json = j.dump();
  return out;
}

}  // namespace

StatusOr<TaskOutcome> RunEvalTask(const model::Qwen3Model& model, const model::Tokenizer& tokenizer,
                                  const TaskSettings& s) {
  ASSIGN_OR_RETURN(const TaskInfo* row, LookupTask(s.task));
  if (!IsTaskPath(s.task) && s.data_dir.empty()) {
    return absl::InvalidArgumentError(
        "no evaluation data: pass --data-dir or set BITSWEEP_DATA_DIR");
  }
  try {
    switch (row->kind) {
      case TaskKind::kPerplexity:
        return RunPerplexityTask(s, model, tokenizer);
      case TaskKind::kMultipleChoice:
        return RunChoiceTask(s, model, tokenizer);
      case TaskKind::kKShot:
        return RunMmluTask(s, model, tokenizer);
    }
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(s.task, ": ", e.what()));
  }
  return absl::InternalError("unreachable");
}

}  // namespace bitsweep::eval
