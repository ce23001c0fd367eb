#include "quant/layer_job.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "model/arch.h"
#include "model/qwen3.h"
#include "quant/gptq.h"

namespace bitsweep::quant {

model::Linear* FindLinearIn(model::DecoderLayer& layer, const std::string& name) {
  for (auto& [n, lin] : layer.Linears()) {
    if (n == name) return lin;
  }
  return nullptr;
}

StatusOr<LayerHessians> CollectHessians(LayerJob& job, const std::vector<std::string>& names) {
  model::DecoderLayer& layer = job.model->layer(job.index);
  LayerHessians out;
  out.tokens.assign(names.size(), 0);
  // The first linear of each shared input, by key; only it gets a hook.
  std::map<std::string, size_t> first_of;
  std::vector<size_t> feeder(names.size());
  for (size_t k = 0; k < names.size(); ++k) {
    model::Linear* lin = FindLinearIn(layer, names[k]);
    if (lin == nullptr) {
      return absl::InternalError(absl::StrCat(job.prefix, names[k], ": no such linear"));
    }
    out.linears.push_back(lin);
    const auto [it, first] = first_of.emplace(model::SharedInputKey(names[k]), k);
    feeder[k] = it->second;
    if (!first) {
      out.h.push_back(out.h[it->second]);
      continue;
    }
    // A row-parallel linear (tensor parallelism) sees a slice of its input features; its
    // Hessian is over the whole input, gathered from every rank in the hook below.
    const bool gather = lin->style() == model::ParallelStyle::kRow;
    out.h.push_back(std::make_shared<HessianAccumulator>(
        lin->in_features() * (gather ? job.model->tp()->world_size() : 1),
        job.model->device()));
  }
  const std::shared_ptr<const model::Collective> tp = job.model->tp();
  std::vector<model::Linear*> hooked;
  for (size_t k = 0; k < names.size(); ++k) {
    if (feeder[k] != k) continue;
    HessianAccumulator* h = out.h[k].get();
    int64_t* count = &out.tokens[k];
    const bool gather = out.linears[k]->style() == model::ParallelStyle::kRow;
    out.linears[k]->SetInputHook([h, count, gather, tp](const at::Tensor& x) {
      h->Add(gather ? tp->AllGather(x, -1) : x, 1);
      *count += x.numel() / x.size(-1);
      return x;
    });
    hooked.push_back(out.linears[k]);
  }
  try {
    for (const at::Tensor& x : *job.xs) (void)job.model->RunLayer(job.index, x, *job.rope);
  } catch (...) {
    for (model::Linear* lin : hooked) lin->SetInputHook(nullptr);
    throw;
  }
  for (model::Linear* lin : hooked) lin->SetInputHook(nullptr);
  for (size_t k = 0; k < names.size(); ++k) out.tokens[k] = out.tokens[feeder[k]];
  return out;
}

}  // namespace bitsweep::quant
