// GPTQ with lazy block updates: IST-DASLab/gptq gptq.py fasterquant (docs/methods.md#gptq),
// rewritten for CPU speed. quant/reference.cc holds the column-by-column version this is tested
// against.
//
// Walk-through (shapes: W [out, in], H and Hinv [in, in], a block has n <= blocksize columns):
//  1. Per-channel params are found once on the original W (before dead columns are zeroed).
//  2. Dead columns (diag(H) == 0) get H[i,i] = 1 and W[:, i] = 0; static groups find their params
//     now, on this W in the original column order.
//  3. act_order permutes W's columns and H by descending diag(H).
//  4. Hinv = upper Cholesky factor of (H + percdamp * mean(diag H) * I)^-1.
//  5. For each block [i1, i2): group params whose first column lies in the block are found on the
//     global W (updated by earlier blocks only); then every output row quantises the block's
//     columns left to right, spreading each column's error over the block's later columns
//     (W1[r, j] -= err * Hinv[col, j]); finally the remaining columns receive the whole block's
//     errors in one matmul, W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:].
//
// Why the intra-block loop runs per output row on raw pointers: given its params, row r's
// quantisation within a block depends on row r alone (errors propagate along a row, through
// Hinv), so rows are independent tasks for at::parallel_for, and each row's n weights plus one
// Hinv row stay in L1. Block-start params make that possible: fasterquant reads the global W,
// which does not change while a block is processed, so they can be found before the loop.
#include "quant/gptq.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "model/arch.h"
#include "model/qwen3.h"
#include "model/shape_string.h"
#include "quant/rtn.h"
#include "quant/tensor_parallel.h"

namespace bitsweep::quant {
namespace {

// Rows per at::parallel_for task: one row of a block is at most blocksize^2 / 2 multiply-adds.
constexpr int64_t kRowGrain = 16;

using model::ShapeString;

// Quantises columns [i1, i1 + n) of one output row, compensating each column's error on the
// block's later columns. w1: the row's n block weights (updated in place); err1: n outputs;
// codes: n outputs; scale/zero: the row's [n_groups] params; group: n group indices;
// hinv: [in, in] row-major. Returns the row's share of fasterquant's loss.
double QuantizeRowBlock(float* __restrict w1, float* __restrict err1, int32_t* __restrict codes,
                        const float* scale, const float* zero, const int64_t* group,
                        const float* __restrict hinv, int64_t in, int64_t i1, int64_t n,
                        float minq, float maxq) {
  double loss = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t col = i1 + i;
    const float s = scale[group[i]];
    const float z = zero[group[i]];
    const float x = w1[i];
    // Same operations, in the same order, as QuantizeCodes / DequantizeCodes (std::nearbyint
    // rounds half to even, like torch.round), so GPTQ with H = I reproduces RTN bit for bit.
    const float q = std::min(std::max(std::nearbyint(x / s) + z, minq), maxq);
    const float x_hat = s * (q - z);
    const float d = hinv[col * in + col];
    const float diff = x - x_hat;
    loss += diff * diff / (d * d) / 2;
    const float err = diff / d;
    err1[i] = err;
    codes[i] = static_cast<int32_t>(q);
    const float* __restrict h_row = hinv + col * in + i1;  // Hinv[col, i1:i1+n]
    for (int64_t j = i + 1; j < n; ++j) w1[j] -= err * h_row[j];
  }
  return loss;
}

// QuantizeRowBlock for every row at once with tensor ops, for a weight off the CPU (upstream's
// fasterquant loop): the same operations column by column, with the block's error compensation
// as one rank-1 update per column. codes: the block's [out, n] columns (written); hinv1: the
// block's [n, n] corner of Hinv; group: n group indices (host); loss accumulates on the device
// (no host sync inside the loop).
void QuantizeBlockOnDevice(at::Tensor& w1, at::Tensor& err1, at::Tensor codes,
                           const at::Tensor& scales, const at::Tensor& zeros, const int64_t* group,
                           const at::Tensor& hinv1, float minq, float maxq, at::Tensor& loss) {
  const int64_t n = w1.size(1);
  for (int64_t i = 0; i < n; ++i) {
    const at::Tensor x = w1.select(1, i);
    const at::Tensor s = scales.select(1, group[i]);
    const at::Tensor z = zeros.select(1, group[i]);
    const at::Tensor q = at::clamp(at::round(x / s) + z, minq, maxq);
    const at::Tensor x_hat = s * (q - z);
    const at::Tensor d = hinv1.select(0, i).select(0, i);
    const at::Tensor diff = x - x_hat;
    loss.add_((diff * diff / (d * d) / 2).sum().to(at::kDouble));
    const at::Tensor err = diff / d;
    err1.select(1, i).copy_(err);
    codes.select(1, i).copy_(q);
    if (i + 1 < n) {
      w1.narrow(1, i + 1, n - i - 1)
          .sub_(err.unsqueeze(1) * hinv1.select(0, i).narrow(0, i + 1, n - i - 1).unsqueeze(0));
    }
  }
}

void StoreParams(const GroupParams& p, int64_t g, at::Tensor& scales, at::Tensor& zeros) {
  scales.select(1, g).copy_(p.scale);
  zeros.select(1, g).copy_(p.zero);
}

// H: the Hessian as this function's own working matrix ([in, in] fp32, contiguous, on w's device;
// it becomes the damped Hessian): a copy of the caller's h, or h itself when given up.
StatusOr<GptqResult> GptqQuantizeImpl(const at::Tensor& w, at::Tensor H,
                                      const GptqOptions& options) {
  c10::NoGradGuard no_grad;  // weights may be trainable parameters; nothing here is differentiated
  const QuantGrid& grid = options.grid;
  const int64_t out = w.size(0);
  const int64_t in = w.size(1);
  const bool grouped = grid.group_size != -1;
  const int64_t group_size = grouped ? grid.group_size : in;
  const int64_t n_groups = in / group_size;
  const bool static_groups = grouped && options.static_groups;

  // Everything runs on w's device (H and W in fp32, as the reference accumulates).
  const c10::Device device = w.device();
  const at::TensorOptions f32 = at::TensorOptions(device).dtype(at::kFloat);
  if (!at::isfinite(H).all().item<bool>()) {
    return absl::InvalidArgumentError("GptqQuantize: h contains non-finite values");
  }
  at::Tensor W = w.to(device, at::kFloat).clone(at::MemoryFormat::Contiguous);  // [out, in]

  at::Tensor scales = at::zeros({out, n_groups}, f32);
  at::Tensor zeros = at::zeros({out, n_groups}, f32);
  if (!grouped) StoreParams(FindParams(W, grid), 0, scales, zeros);

  const at::Tensor dead = H.diagonal().eq(0);  // [in]
  H.diagonal().masked_fill_(dead, 1);
  W.masked_fill_(dead.unsqueeze(0), 0);

  if (static_groups) {
    for (int64_t g = 0; g < n_groups; ++g) {
      StoreParams(FindParams(W.slice(1, g * group_size, (g + 1) * group_size), grid), g, scales,
                  zeros);
    }
  }

  at::Tensor perm = at::arange(in, f32.dtype(at::kLong));  // permuted position -> original column
  if (options.act_order) {
    perm = std::get<1>(at::sort(H.diagonal(), /*stable=*/true, /*dim=*/0, /*descending=*/true));
    W = W.index_select(1, perm).contiguous();
    // Rows, then columns, each [in, in] matrix dropped once the next exists: at most two alive.
    at::Tensor rows = H.index_select(0, perm);
    H = at::Tensor();
    H = rows.index_select(1, perm).contiguous();
    rows = at::Tensor();
  }

  H.diagonal().add_(H.diagonal().mean() * options.percdamp);
  at::Tensor L, info;
  std::tie(L, info) = at::linalg_cholesky_ex(H, /*upper=*/false, /*check_errors=*/false);
  if (info.item<int64_t>() != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "GptqQuantize: the damped Hessian h is not positive definite (Cholesky failed at order ",
        info.item<int64_t>(), "); raise percdamp or calibrate on more tokens"));
  }
  // Each [in, in] matrix is dropped as soon as the next is made: for a down_proj of Qwen3-8B
  // they are 604 MB each, and at most two are alive at a time.
  H = at::Tensor();
  at::Tensor inverse = at::cholesky_inverse(L);
  L = at::Tensor();
  at::Tensor Hinv;
  std::tie(Hinv, info) = at::linalg_cholesky_ex(inverse, /*upper=*/true, /*check_errors=*/false);
  inverse = at::Tensor();
  if (info.item<int64_t>() != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "GptqQuantize: the inverse of the damped Hessian h is not positive definite (Cholesky "
        "failed at order ", info.item<int64_t>(), "); raise percdamp"));
  }
  Hinv = Hinv.contiguous();

  // Group of each column in processing order.
  const at::Tensor perm_host = perm.cpu();  // once per linear
  const int64_t* perm_p = perm_host.data_ptr<int64_t>();
  std::vector<int64_t> col_group(in, 0);
  for (int64_t c = 0; c < in; ++c) {
    if (static_groups) {
      col_group[c] = perm_p[c] / group_size;
    } else if (grouped) {
      col_group[c] = c / group_size;
    }
  }

  at::Tensor codes = at::empty({out, in}, f32.dtype(at::kInt));  // processing order
  std::vector<double> row_loss(out, 0.0);
  const float minq = static_cast<float>(grid.minq());
  const float maxq = static_cast<float>(grid.maxq());
  const bool on_cpu = device.is_cpu();
  const float* hinv_p = on_cpu ? Hinv.data_ptr<float>() : nullptr;
  at::Tensor device_loss = at::zeros({}, f32.dtype(at::kDouble));  // off the CPU
  for (int64_t i1 = 0; i1 < in; i1 += options.blocksize) {
    const int64_t i2 = std::min(i1 + options.blocksize, in);
    const int64_t n = i2 - i1;
    if (grouped && !static_groups) {
      for (int64_t c = (i1 + group_size - 1) / group_size * group_size; c < i2; c += group_size) {
        StoreParams(FindParams(W.slice(1, c, c + group_size), grid), c / group_size, scales,
                    zeros);
      }
    }
    at::Tensor W1 = W.slice(1, i1, i2).clone(at::MemoryFormat::Contiguous);  // [out, n]
    at::Tensor Err1 = at::empty({out, n}, f32);                               // [out, n]
    if (!on_cpu) {
      QuantizeBlockOnDevice(W1, Err1, codes.narrow(1, i1, n), scales, zeros, col_group.data() + i1,
                            Hinv.slice(0, i1, i2).slice(1, i1, i2), minq, maxq, device_loss);
    } else {
      float* w1_p = W1.data_ptr<float>();
      float* err1_p = Err1.data_ptr<float>();
      int32_t* codes_p = codes.data_ptr<int32_t>();
      const float* scale_p = scales.data_ptr<float>();
      const float* zero_p = zeros.data_ptr<float>();
      const int64_t* group_p = col_group.data() + i1;
      at::parallel_for(0, out, kRowGrain, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          row_loss[r] += QuantizeRowBlock(w1_p + r * n, err1_p + r * n, codes_p + r * in + i1,
                                          scale_p + r * n_groups, zero_p + r * n_groups, group_p,
                                          hinv_p, in, i1, n, minq, maxq);
        }
      });
    }
    if (i2 < in) {
      // W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]; the strided view is BLAS-compatible, so addmm_
      // writes into W without a copy.
      W.slice(1, i2).addmm_(Err1, Hinv.slice(0, i1, i2).slice(1, i2), /*beta=*/1, /*alpha=*/-1);
    }
  }

  const at::Tensor invperm = at::argsort(perm);
  at::Tensor g_idx = at::arange(in, f32.dtype(at::kLong)).div(group_size, "floor");
  if (!static_groups) g_idx = g_idx.index_select(0, invperm);

  GptqResult result;
  result.weight.grid = grid;
  result.weight.codes = options.act_order ? codes.index_select(1, invperm) : codes;
  result.weight.scales = scales;
  result.weight.zeros = zeros;
  result.weight.g_idx = g_idx.to(at::kInt);
  for (double l : row_loss) result.loss += l;
  if (!on_cpu) result.loss = device_loss.item<double>();
  return result;
}

// h as a new fp32 contiguous matrix on `device`, for GPTQ to work in.
at::Tensor WorkingCopy(const at::Tensor& h, c10::Device device) {
  return h.to(device, at::kFloat).clone(at::MemoryFormat::Contiguous);
}

}  // namespace

HessianAccumulator::HessianAccumulator(int64_t in_features, c10::Device device)
    : in_(in_features), device_(device) {
  TORCH_CHECK(in_features > 0, "HessianAccumulator: in_features = ", in_features,
              " must be positive");
}

void HessianAccumulator::Add(const at::Tensor& x, int64_t sequences) {
  TORCH_CHECK(x.defined() && x.dim() >= 1 && x.size(-1) == in_, "HessianAccumulator::Add: x must "
              "be [..., in_features = ", in_, "], got ", x.defined() ? ShapeString(x) : "undefined");
  TORCH_CHECK(sequences >= 1, "HessianAccumulator::Add: sequences = ", sequences,
              " must be >= 1");
  c10::NoGradGuard no_grad;
  const at::Tensor xs = x.reshape({-1, in_});  // [tokens, in]
  if (h_.defined()) {
    Fold(xs.to(device_, at::kFloat), sequences);
    return;
  }
  // A copy: the caller's activation may be reused or changed in place after this returns.
  pending_.push_back({xs.to(device_, at::kFloat, /*non_blocking=*/false, /*copy=*/true),
                      sequences});
  pending_rows_ += xs.size(0);
  pending_sequences_ += sequences;
  if (pending_rows_ > in_) FoldPending();
}

void HessianAccumulator::Fold(const at::Tensor& xs, int64_t sequences) const {
  // add_batch: rescale the running mean, then add the new sequences' outer products.
  h_.mul_(static_cast<double>(n_) / static_cast<double>(n_ + sequences));
  n_ += sequences;
  const at::Tensor scaled = xs * std::sqrt(2.0 / static_cast<double>(n_));
  h_.addmm_(scaled.t(), scaled);
}

void HessianAccumulator::FoldPending() const {
  if (!h_.defined()) {
    h_ = at::zeros({in_, in_}, at::TensorOptions(device_).dtype(at::kFloat));
  }
  std::vector<Pending> pending = std::move(pending_);
  pending_.clear();
  pending_rows_ = 0;
  pending_sequences_ = 0;
  c10::NoGradGuard no_grad;
  for (Pending& p : pending) {
    Fold(p.xs, p.sequences);
    p.xs = at::Tensor();  // each copy goes as soon as it is folded
  }
}

const at::Tensor& HessianAccumulator::H() const {
  if (!h_.defined() || !pending_.empty()) FoldPending();
  return h_;
}

at::Tensor HessianAccumulator::Release() {
  (void)H();
  return std::move(h_);
}

int64_t HessianAccumulator::held_bytes() const {
  if (h_.defined()) return h_.numel() * static_cast<int64_t>(sizeof(float));
  return pending_rows_ * in_ * static_cast<int64_t>(sizeof(float));
}

Status ValidateGptqInputs(const at::Tensor& w, const at::Tensor& h, const GptqOptions& options) {
  if (!w.defined() || w.dim() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GptqQuantize: w must be a 2-D [out, in] tensor, got ",
        w.defined() ? absl::StrCat(w.dim(), "-D ", ShapeString(w)) : "an undefined tensor"));
  }
  if (!w.is_floating_point()) {
    return absl::InvalidArgumentError("GptqQuantize: w must be a floating-point tensor");
  }
  if (w.size(0) == 0) return absl::InvalidArgumentError("GptqQuantize: w has no rows");
  const int64_t in = w.size(1);
  RETURN_IF_ERROR(options.grid.Validate(in));
  if (!h.defined() || h.dim() != 2 || h.size(0) != in || h.size(1) != in) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GptqQuantize: h must be [in, in] = [", in, ", ", in, "] to match w ", ShapeString(w),
        ", got ", h.defined() ? ShapeString(h) : "an undefined tensor"));
  }
  if (!h.is_floating_point()) {
    return absl::InvalidArgumentError("GptqQuantize: h must be a floating-point tensor");
  }
  if (options.blocksize < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("GptqOptions.blocksize = ", options.blocksize, " must be >= 1"));
  }
  if (!(options.percdamp >= 0) || !std::isfinite(options.percdamp)) {
    return absl::InvalidArgumentError(
        absl::StrCat("GptqOptions.percdamp = ", options.percdamp, " must be finite and >= 0"));
  }
  return absl::OkStatus();
}

StatusOr<GptqResult> GptqQuantize(const at::Tensor& w, const at::Tensor& h,
                                  const GptqOptions& options) {
  RETURN_IF_ERROR(ValidateGptqInputs(w, h, options));
  try {
    return GptqQuantizeImpl(w, WorkingCopy(h, w.device()), options);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("GptqQuantize: ", e.what_without_backtrace()));
  }
}

StatusOr<GptqResult> GptqQuantizeConsuming(const at::Tensor& w, at::Tensor&& h,
                                           const GptqOptions& options) {
  at::Tensor owned = std::move(h);
  RETURN_IF_ERROR(ValidateGptqInputs(w, owned, options));
  try {
    const bool usable = owned.scalar_type() == at::kFloat && owned.is_contiguous() &&
                        owned.device() == w.device();
    return GptqQuantizeImpl(w, usable ? std::move(owned) : WorkingCopy(owned, w.device()),
                            options);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("GptqQuantize: ", e.what_without_backtrace()));
  }
}

namespace {

class GptqMethod : public Quantizer {
 public:
  GptqMethod(const MethodInfo& row, const QuantConfig& config, const GptqOptions& gptq)
      : Quantizer(row, config, gptq.grid),
        gptq_(gptq),
        true_sequential_(OptionBool(config.options, "true_sequential")) {}

  Status QuantizeLayer(LayerJob& job, QuantizeResult* out) const override {
    model::Qwen3Model& m = *job.model;
    const int64_t i = job.index;
    model::DecoderLayer& layer = m.layer(i);
    const auto groups = model::SequentialGroups(layer, true_sequential_);
    if (true_sequential_ && !layer.moe && m.tp()->world_size() == 1 &&
        groups.size() == model::DenseLayerStages::kGroups) {
      return QuantizeDenseStaged(job, groups, out);
    }
    const std::map<std::string, model::LinearRole> roles = model::LinearRoles(layer);
    for (const auto& group : groups) {
      ASSIGN_OR_RETURN(LayerHessians lh, CollectHessians(job, group));
      for (size_t k = 0; k < group.size(); ++k) {
        model::Linear& lin = *lh.linears[k];
        const std::string name = job.prefix + group[k];
        const std::optional<QuantGrid> g = LinearGrid(i, group[k]);
        if (!g) {  // kept in full precision (mixed recipe)
          lh.h[k].reset();
          continue;
        }
        if (lh.tokens[k] < job.min_expert_tokens && roles.at(group[k]).expert) {
          lh.h[k].reset();
          ASSIGN_OR_RETURN(LinearReport r, RtnQuantizeLinear(*m.tp(), lin, name, *g, out));
          r.calib_tokens = lh.tokens[k];
          r.note = absl::StrCat("fallback to RTN: ", lh.tokens[k], " calibration tokens (< ",
                                job.min_expert_tokens, ")");
          out->linears.push_back(r);
          continue;
        }
        // The last linear to use a (shared) accumulator lets GPTQ work in its storage.
        const bool last = lh.h[k].use_count() == 1;
        RETURN_IF_ERROR(QuantizeLinear(*m.tp(), lin, name, *g,
                                       last ? lh.h[k]->Release() : lh.h[k]->H(), last,
                                       lh.tokens[k], out));
        lh.h[k].reset();
      }
    }
    for (at::Tensor& x : *job.xs) x = m.RunLayer(i, x, *job.rope);
    return absl::OkStatus();
  }

  nlohmann::json Recipe() const override {
    return {{"percdamp", gptq_.percdamp},
            {"blocksize", gptq_.blocksize},
            {"act_order", gptq_.act_order},
            {"static_groups", gptq_.static_groups},
            {"true_sequential", true_sequential_}};
  }

 private:
  // Rows are independent given H: under TP each rank runs GPTQ on its share of the rows.
  // consume: H is the last use of its Hessian, so GPTQ may work in its storage.
  // `grid`: the linear's own (LinearGrid).
  Status QuantizeLinear(const model::Collective& tp, model::Linear& lin, const std::string& name,
                        const QuantGrid& grid, at::Tensor H, bool consume, int64_t tokens,
                        QuantizeResult* out) const {
    double loss = 0;
    GptqOptions options = gptq_;
    options.grid = grid;
    auto gptq = [&](const at::Tensor& rows) -> StatusOr<QuantizedWeight> {
      ASSIGN_OR_RETURN(GptqResult r, consume ? GptqQuantizeConsuming(rows, std::move(H), options)
                                             : GptqQuantize(rows, H, options));
      loss = r.loss;
      return std::move(r.weight);
    };
    ASSIGN_OR_RETURN(QuantizedWeight q, QuantizeRowsSharded(tp, lin, gptq));
    q.NarrowCodes();  // held until the layer is written: a quarter of int32's memory
    out->linears.push_back({name, SumOverRanks(tp, loss), tokens, "", {}});
    out->weights.emplace(name, std::move(q));
    return absl::OkStatus();
  }

  // A dense layer in true-sequential order, in one process: the calibration inputs pass
  // through the layer's stages once (model::DenseLayerStages), each group's Hessian taken from
  // its stage's input, instead of one whole-layer forward per group. The linears of a group
  // read the same input, so they share one Hessian; it holds what each one's input hook would
  // have accumulated in a forward, and the stages compute the forward's operations, so the
  // weights and next-layer inputs are those of the per-group forwards bit for bit.
  Status QuantizeDenseStaged(LayerJob& job, const std::vector<std::vector<std::string>>& groups,
                             QuantizeResult* out) const {
    model::Qwen3Model& m = *job.model;
    model::DecoderLayer& layer = m.layer(job.index);
    std::vector<model::DenseLayerStages> stages;
    stages.reserve(job.xs->size());
    for (const at::Tensor& x : *job.xs) stages.emplace_back(layer, m.config(), *job.rope, x);
    for (const auto& group : groups) {
      std::unique_ptr<HessianAccumulator> h;
      int64_t tokens = 0;
      for (model::DenseLayerStages& s : stages) {
        const at::Tensor& x = s.Next();
        if (!h) h = std::make_unique<HessianAccumulator>(x.size(-1), x.device());
        h->Add(x, 1);
        tokens += x.numel() / x.size(-1);
      }
      for (size_t k = 0; k < group.size(); ++k) {
        const std::string& relative = group[k];
        model::Linear* lin = FindLinearIn(layer, relative);
        if (lin == nullptr) {
          return absl::InternalError(absl::StrCat(job.prefix, relative, ": no such linear"));
        }
        const std::optional<QuantGrid> g = LinearGrid(job.index, relative);
        if (!g) continue;  // kept in full precision (mixed recipe)
        // The group's linears share H; the last one may use its storage.
        const bool last = k + 1 == group.size();
        RETURN_IF_ERROR(QuantizeLinear(*m.tp(), *lin, job.prefix + relative, *g,
                                       last ? h->Release() : h->H(), last, tokens, out));
      }
    }
    for (size_t s = 0; s < stages.size(); ++s) (*job.xs)[s] = stages[s].Output();
    return absl::OkStatus();
  }

  GptqOptions gptq_;
  bool true_sequential_;
};

}  // namespace

StatusOr<QuantizerPtr> MakeGptqQuantizer(const MethodInfo& row, const QuantConfig& config) {
  GptqOptions g;
  g.grid = ConfigGrid(config, GridKind::kMinMaxWithZero);
  g.percdamp = OptionDouble(config.options, "percdamp");
  g.blocksize = OptionInt(config.options, "blocksize");
  g.act_order = OptionBool(config.options, "act_order");
  g.static_groups = OptionBool(config.options, "static_groups");
  return QuantizerPtr(new GptqMethod(row, config, g));
}

}  // namespace bitsweep::quant
