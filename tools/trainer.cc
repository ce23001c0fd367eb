#include "tools/trainer.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "model/qwen3.h"

namespace bitsweep::tools {
namespace {

// Windows of seqlen + 1 tokens starting at the given offsets: [B, seqlen + 1] int64.
torch::Tensor Windows(const std::vector<int32_t>& s, const std::vector<int64_t>& starts,
                      int64_t seqlen) {
  torch::Tensor t = torch::empty({static_cast<int64_t>(starts.size()), seqlen + 1}, torch::kLong);
  auto a = t.accessor<int64_t, 2>();
  for (size_t b = 0; b < starts.size(); ++b) {
    for (int64_t i = 0; i <= seqlen; ++i) a[b][i] = s[starts[b] + i];
  }
  return t;
}

torch::Tensor Loss(const model::Qwen3Model& m, const torch::Tensor& w) {
  const int64_t T = w.size(1) - 1;
  torch::Tensor logits = m.Forward(w.narrow(1, 0, T));
  return torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}),
                                              w.narrow(1, 1, T).reshape({-1}));
}

std::vector<torch::Tensor> AllTensors(const std::map<std::string, torch::Tensor>& m) {
  std::vector<torch::Tensor> out;
  for (const auto& [name, t] : m) out.push_back(t);
  return out;
}

}  // namespace

StatusOr<TrainResult> TrainQwen3(const std::vector<int32_t>& train,
                                 const std::vector<int32_t>& heldout, int64_t vocab_size,
                                 const TrainOptions& o, const std::string& out_dir,
                                 const std::function<void(const TrainReport&)>& progress) {
  if (static_cast<int64_t>(train.size()) <= o.seqlen + 1 ||
      static_cast<int64_t>(heldout.size()) < o.seqlen + 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the training stream needs more than, and the held-out stream at least, seqlen + 1 = ",
        o.seqlen + 1, " tokens (have ", train.size(), " and ", heldout.size(), ")"));
  }
  if (o.steps < 1 || o.batch < 1 || o.seqlen < 1) {
    return absl::InvalidArgumentError("steps, batch and seqlen must be positive");
  }
  const model::Qwen3Config config = model::TinyConfig(o.shape, vocab_size);
  RETURN_IF_ERROR(config.Validate());
  torch::manual_seed(o.shape.seed);
  auto weights = model::RandomQwen3Weights(config, o.shape.seed);
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& [name, t] : weights) {
    t.set_requires_grad(true);
    (t.dim() >= 2 ? decay : no_decay).push_back(t);
  }
  ASSIGN_OR_RETURN(auto model, model::Qwen3Model::FromTensors(config, weights));

  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                 torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay)));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(
                                    torch::optim::AdamWOptions(o.lr).weight_decay(0.0)));
  torch::optim::AdamW opt(groups, torch::optim::AdamWOptions(o.lr).betas({0.9, 0.95}));

  // Fixed held-out windows on EvaluatePerplexity's grid (see TrainOptions::eval_windows), so
  // that the trainer's numbers and `bitsweep eval` on the saved folder are comparable.
  std::vector<int64_t> held_starts;
  const int64_t grid = static_cast<int64_t>(heldout.size()) / (o.seqlen + 1);
  const int64_t held_windows = std::min(std::max<int64_t>(1, o.eval_windows), grid);
  for (int64_t k = 0; k < held_windows; ++k) {
    held_starts.push_back(grid * k / held_windows * (o.seqlen + 1));
  }
  const torch::Tensor held = Windows(heldout, held_starts, o.seqlen);
  auto heldout_loss = [&]() {
    torch::NoGradGuard no_grad;
    double sum = 0;
    for (int64_t b = 0; b < held.size(0); b += o.batch) {
      const int64_t n = std::min(o.batch, held.size(0) - b);
      sum += Loss(*model, held.narrow(0, b, n)).item<double>() * n;
    }
    return sum / held.size(0);
  };

  TrainResult result;
  result.parameters = model->NumParameters();
  const auto start = std::chrono::steady_clock::now();
  const int64_t span = static_cast<int64_t>(train.size()) - o.seqlen - 1;
  auto gen = at::detail::createCPUGenerator(o.shape.seed + 1);
  double period_loss = 0;
  int64_t period_steps = 0;
  for (int64_t step = 1; step <= o.steps; ++step) {
    const double lr = step <= o.warmup
                          ? o.lr * step / std::max<int64_t>(1, o.warmup)
                          : o.lr * 0.5 *
                                (1 + std::cos(M_PI * (step - o.warmup) /
                                              std::max<int64_t>(1, o.steps - o.warmup)));
    for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
    torch::Tensor starts_t = at::randint(span + 1, {o.batch}, gen, torch::kLong);
    std::vector<int64_t> starts(starts_t.data_ptr<int64_t>(),
                                starts_t.data_ptr<int64_t>() + o.batch);
    torch::Tensor loss = Loss(*model, Windows(train, starts, o.seqlen));
    opt.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(AllTensors(weights), o.clip);
    opt.step();
    period_loss += loss.item<double>();
    ++period_steps;
    const bool eval_now = step == o.steps || (o.eval_every > 0 && step % o.eval_every == 0);
    if (eval_now) {
      TrainReport r;
      r.step = step;
      r.train_loss = period_loss / period_steps;
      r.heldout_loss = heldout_loss();
      r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      result.history.push_back(r);
      if (progress) progress(r);
      period_loss = 0;
      period_steps = 0;
    }
  }
  result.final_heldout_loss = result.history.back().heldout_loss;
  RETURN_IF_ERROR(
      model::WriteModelFolder(out_dir, config, model->NamedTensors(), o.stored_dtype, 0));
  return result;
}

double UnigramLoss(const std::vector<int32_t>& train, const std::vector<int32_t>& heldout,
                   int64_t vocab_size) {
  std::vector<double> counts(static_cast<size_t>(vocab_size), 1.0);
  for (int32_t id : train) counts[static_cast<size_t>(id)] += 1;
  const double total = static_cast<double>(train.size() + static_cast<size_t>(vocab_size));
  double nll = 0;
  for (int32_t id : heldout) nll -= std::log(counts[static_cast<size_t>(id)] / total);
  return heldout.empty() ? 0.0 : nll / static_cast<double>(heldout.size());
}

}  // namespace bitsweep::tools
