#include "quant/pipeline.h"

#include <malloc.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "model/collective.h"
#include "model/qwen3.h"
#include "model/tokenizer.h"
#include "quant/calibration_data.h"
#include "quant/export.h"
#include "quant/packed.h"
#include "quant/quantize_model.h"

#ifndef BITSWEEP_VERSION
#define BITSWEEP_VERSION "dev"
#endif

namespace bitsweep::quant {
namespace {

// Calibration defaults per method (METHODS.md §1.3). SmoothQuant's act scales upstream use 512
// Pile-val samples of 512 tokens; Pile is not part of the study's data, so C4 windows stand in.
struct CalibDefaults {
  const char* source;
  int64_t nsamples, seqlen;
  uint64_t seed;
  SamplingProcedure procedure;
};

CalibDefaults DefaultsFor(Method m) {
  using P = SamplingProcedure;
  switch (m) {
    case Method::kAwq:
      return {"c4", 128, 512, 42, P::kAwqBlocks};
    case Method::kSmoothQuant:
      return {"c4", 512, 512, 42, P::kGptqWindows};
    default:
      return {"c4", 128, 2048, 0, P::kGptqWindows};
  }
}

}  // namespace

StatusOr<QuantizeFolderReport> QuantizeFolder(const QuantizeRequest& f,
                                              const LayerProgress& progress,
                                              std::shared_ptr<const model::Collective> tp) {
  const std::string& data_dir = f.data_dir;
  auto fail = [](const Status& s) { return s; };
  auto bad = [](const std::string& msg) { return absl::InvalidArgumentError(msg); };
  auto method = ParseMethod(f.method);
  if (!method.ok()) return fail(method.status());
  const Method m = *method;
  if (f.group != -1 && f.group <= 0) return bad("--group must be -1 (per channel) or positive");
  if (m == Method::kBillm && f.wbits != 4 && f.wbits != 1) {
    return bad("--wbits: BiLLM binarizes weights (1 bit); omit --wbits or pass 1");
  }
  if (m == Method::kSmoothQuant && f.wbits < 2) {
    return bad("--wbits: SmoothQuant's symmetric grid needs 2..8 bits");
  }
  if (m != Method::kSmoothQuant && (f.abits != 8 || f.qkv_output || f.alpha != 0.5)) {
    return bad("--abits, --alpha and --qkv-output apply to --method smoothquant only");
  }
  const bool awq_flags = f.awq_n_grid != 20 || f.awq_duo_scaling || f.awq_no_clip ||
                         f.awq_max_shrink != 0.5 || f.awq_clip_tokens != 512;
  if (m != Method::kAwq && awq_flags) return bad("--awq-* options apply to --method awq only");
  if (m != Method::kBillm && (f.billm_saliency != "hessian" || f.billm_up_lim != 50)) {
    return bad("--billm-* options apply to --method billm only");
  }
  if (m != Method::kGptq && (f.act_order || f.static_groups || f.no_true_sequential)) {
    return bad("--act-order, --static-groups and --no-true-sequential apply to --method gptq only");
  }
  if (f.static_groups && !f.act_order) return bad("--static-groups needs --act-order");
  auto dtype = model::ParseComputeDType(f.dtype);
  if (!dtype.ok()) return fail(dtype.status());
  const int wbits = m == Method::kBillm ? 1 : f.wbits;
  const int64_t group = m == Method::kSmoothQuant ? -1
                        : m == Method::kBillm     ? f.blocksize
                                                  : f.group;

  model::LoadOptions lo;
  lo.dtype = *dtype;
  lo.lazy_layers = true;  // the driver streams: one decoder layer in memory at a time
  lo.tp = tp;
  if ((tp ? tp->world_size() : 1) != f.tp) {
    return bad(absl::StrCat("tp = ", f.tp, " but the tensor-parallel group has ",
                            tp ? tp->world_size() : 1, " ranks"));
  }
  auto loaded = model::Qwen3Model::Load(f.model, lo);
  if (!loaded.ok()) return fail(loaded.status());
  model::Qwen3Model& mdl = **loaded;

  QuantizeOptions o;
  o.method = m;
  o.grid.bits = wbits;
  o.grid.group_size = group;
  o.gptq.percdamp = f.percdamp;
  o.gptq.blocksize = f.blocksize;
  o.gptq.act_order = f.act_order;
  o.gptq.static_groups = f.static_groups;
  o.true_sequential = !f.no_true_sequential;
  o.released_code = f.released_code;
  o.awq.n_grid = f.awq_n_grid;
  o.awq.duo_scaling = f.awq_duo_scaling;
  o.awq.clip = !f.awq_no_clip;
  o.awq.max_shrink = f.awq_max_shrink;
  o.awq.clip_tokens = f.awq_clip_tokens;
  o.smoothquant.alpha = f.alpha;
  o.smoothquant.abits = f.abits;
  o.smoothquant.quantize_qkv_output = f.qkv_output;
  o.smoothquant.smooth = !f.released_code;
  o.billm.percdamp = f.percdamp;
  o.billm.blocksize = f.blocksize;
  o.billm.up_lim = f.billm_up_lim;
  o.billm.saliency = f.billm_saliency == "magnitude" ? BillmOptions::Saliency::kMagnitude
                                                     : BillmOptions::Saliency::kHessian;
  {
    Status s = ValidateQuantizeOptions(mdl.config(), o);
    if (!s.ok()) return fail(s);
  }

  const char* grid_name = m == Method::kAwq ? "asymmetric min-max (AWQ)"
                          : m == Method::kSmoothQuant
                              ? "symmetric abs-max per channel (SmoothQuant)"
                          : m == Method::kBillm ? "residual binarization (BiLLM)"
                                                : "asymmetric min-max with zero in range";
  nlohmann::json recipe = {{"method", f.method},
                           {"wbits", wbits},
                           {"group_size", group},
                           {"grid", grid_name},
                           {"symmetric", m == Method::kSmoothQuant},
                           {"compute_dtype", f.dtype},
                           {"released_code", f.released_code},
                           {"source_model", f.model},
                           {"code_version", BITSWEEP_VERSION},
                           // Provenance only: TP gives the same weights as one device.
                           {"tensor_parallel", mdl.tp()->world_size()}};
  if (m == Method::kGptq) {
    recipe["gptq"] = {{"percdamp", f.percdamp},
                      {"blocksize", f.blocksize},
                      {"act_order", f.act_order},
                      {"static_groups", f.static_groups},
                      {"true_sequential", !f.no_true_sequential}};
  } else if (m == Method::kAwq) {
    recipe["awq"] = {{"n_grid", f.awq_n_grid},           {"duo_scaling", f.awq_duo_scaling},
                     {"clip", !f.awq_no_clip},           {"max_shrink", f.awq_max_shrink},
                     {"clip_tokens", f.awq_clip_tokens}, {"scale_v_to_o", !f.released_code}};
  } else if (m == Method::kSmoothQuant) {
    recipe["smoothquant"] = {{"alpha", f.alpha},
                             {"smooth", !f.released_code},
                             {"abits", f.abits},
                             {"quantize_qkv_output", f.qkv_output},
                             {"activation_quantizer", "per-token symmetric abs-max, dynamic"}};
  } else if (m == Method::kBillm) {
    recipe["billm"] = {{"percdamp", f.percdamp},
                       {"blocksize", f.blocksize},
                       {"up_lim", f.billm_up_lim},
                       {"saliency", f.billm_saliency}};
  }

  CalibrationSet calib;
  const bool calibrated = m != Method::kRtn && !(m == Method::kSmoothQuant && f.released_code);
  if (calibrated) {
    const CalibDefaults d = DefaultsFor(m);
    auto tok = model::Tokenizer::Load(f.model);
    if (!tok.ok()) return fail(tok.status());
    CalibrationSpec spec;
    spec.source = f.calib.empty() ? d.source : f.calib;
    spec.data_dir = data_dir;
    spec.nsamples = f.nsamples > 0 ? f.nsamples : d.nsamples;
    spec.seqlen = f.seqlen > 0 ? f.seqlen : d.seqlen;
    spec.seed = f.seed >= 0 ? static_cast<uint64_t>(f.seed) : d.seed;
    spec.procedure = d.procedure;
    auto c = LoadCalibration(spec, **tok);
    if (!c.ok()) return fail(c.status());
    calib = std::move(c).value();
    recipe["calibration"] = {
        {"source", spec.source},
        {"resolved", calib.description},
        {"procedure",
         spec.procedure == SamplingProcedure::kAwqBlocks ? "awq-blocks" : "gptq-windows"},
        {"nsamples", calib.samples.size()},
        {"requested_nsamples", spec.nsamples},
        {"seqlen", calib.samples.front().size()},
        {"seed", spec.seed}};
  } else if (!f.calib.empty() || f.nsamples > 0 || f.seqlen > 0 || f.seed >= 0) {
    return bad(absl::StrCat("--calib/--nsamples/--seqlen/--seed: ", f.method,
                            f.released_code ? " (released code)" : "",
                            " uses no calibration data"));
  }

  const bool packed =
      !f.no_packed && PackableBits(wbits) && m != Method::kSmoothQuant && m != Method::kBillm;
  recipe["packed_requested"] = packed;
  // Under tensor parallelism rank 0 writes; the other ranks take part in its gathers.
  const bool writes = mdl.tp()->rank() == 0;
  std::unique_ptr<QuantizedModelWriter> writer;
  if (writes) {
    auto created = QuantizedModelWriter::Create(f.out, f.model, mdl, packed);
    if (!created.ok()) return fail(created.status());
    writer = std::move(created).value();
  }
  o.layer_sink = [&](int64_t i, std::map<std::string, QuantizedWeight>& w) {
    Status st;
    if (writes) {
      st = writer->WriteLayer(mdl, i, w);
    } else {
      QuantizedModelWriter::FollowLayer(mdl, i);
    }
    // The layer's buffers are free now: hand the heap's free pages back to the kernel, so the
    // retained heap (fast for the forwards) does not grow with depth.
    malloc_trim(0);
    return st;
  };
  o.progress = progress;
  auto r = QuantizeModel(mdl, calibrated ? &calib : nullptr, o);
  if (!r.ok()) return fail(r.status());
  if (writes) {
    Status s = writer->Finish(mdl, *r, recipe);
    if (!s.ok()) return fail(s);
  } else {
    QuantizedModelWriter::FollowFinish(mdl);
  }
  QuantizeFolderReport report;
  report.linears = static_cast<int64_t>(r->linears.size());
  report.wbits = wbits;
  report.group = group;
  report.packed = packed;
  report.seconds = r->seconds;
  report.summary = r->summary;
  return report;
}

}  // namespace bitsweep::quant
