#include "cli/quantize_command.h"

#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "model/qwen3.h"
#include "model/tokenizer.h"
#include "quant/calibration_data.h"
#include "quant/export.h"
#include "quant/packed.h"
#include "quant/quantize_model.h"

#ifndef BITSWEEP_VERSION
#define BITSWEEP_VERSION "dev"
#endif

namespace bitsweep::cli {
namespace {

// Calibration defaults per method (METHODS.md §1.3). SmoothQuant's act scales upstream use 512
// Pile-val samples of 512 tokens; Pile is not part of the study's data, so C4 windows stand in.
struct CalibDefaults {
  const char* source;
  int64_t nsamples, seqlen;
  uint64_t seed;
  quant::SamplingProcedure procedure;
};

CalibDefaults DefaultsFor(quant::Method m) {
  using P = quant::SamplingProcedure;
  switch (m) {
    case quant::Method::kAwq: return {"c4", 128, 512, 42, P::kAwqBlocks};
    case quant::Method::kSmoothQuant: return {"c4", 512, 512, 42, P::kGptqWindows};
    default: return {"c4", 128, 2048, 0, P::kGptqWindows};
  }
}

}  // namespace

CLI::App* AddQuantizeCommand(CLI::App& app, QuantizeFlags& f) {
  auto* q = app.add_subcommand(
      "quantize",
      "Quantize a model folder with RTN, GPTQ, AWQ, SmoothQuant or BiLLM and write a Hugging "
      "Face folder (dequantized weights, quantization_config.json, and for weight-only methods "
      "at 2/3/4/8 bits the packed GPTQ layout in <out>/packed). Calibration defaults follow the "
      "study (METHODS.md 1.3): GPTQ/BiLLM c4 128x2048 seed 0; AWQ c4 documents <= 512 tokens "
      "packed into 512-token blocks, seed 42; SmoothQuant c4 512x512 seed 42.");
  q->add_option("--model", f.model, "Source model folder")->required();
  q->add_option("--out", f.out, "Output folder (replaced atomically at the end)")->required();
  q->add_option("--method", f.method, "rtn, gptq, awq, smoothquant or billm")
      ->capture_default_str()
      ->check(CLI::IsMember({"rtn", "gptq", "awq", "smoothquant", "billm"}));
  q->add_option("--wbits", f.wbits,
                "Weight bits: 1..8 (rtn, gptq, awq), 2..8 (smoothquant), 1 (billm)")
      ->capture_default_str()->check(CLI::Range(1, 8));
  q->add_option("--abits", f.abits, "SmoothQuant activation bits, 2..8 (applied at evaluation)")
      ->capture_default_str()->check(CLI::Range(2, 8));
  q->add_option("--group", f.group,
                "Group size along the input features; -1 = per channel (smoothquant: per "
                "channel always; billm: its 128-column blocks)")->capture_default_str();
  q->add_option("--calib", f.calib,
                "Calibration: c4, wikitext2 (from --data-dir), a .jsonl/.txt file, or a .json "
                "file of token-id arrays (default c4)");
  q->add_option("--nsamples", f.nsamples, "Calibration samples (default: per method)")
      ->check(CLI::PositiveNumber);
  q->add_option("--seqlen", f.seqlen, "Calibration sample length (default: per method)")
      ->check(CLI::Range(2, 1 << 20));
  q->add_option("--seed", f.seed, "Calibration sampling seed, CPython random (default: per "
                "method)")->check(CLI::NonNegativeNumber);
  q->add_option("--dtype", f.dtype, "Compute dtype of calibration: fp32 or bf16")
      ->capture_default_str()->check(CLI::IsMember({"fp32", "bf16"}));
  q->add_flag("--act-order", f.act_order, "GPTQ: quantize columns by descending Hessian diagonal");
  q->add_flag("--static-groups", f.static_groups, "GPTQ with --act-order: groups fixed up front");
  q->add_flag("--no-true-sequential", f.no_true_sequential,
              "GPTQ: one Hessian pass per layer instead of {k,v,q}|{o}|{up,gate}|{down}");
  q->add_option("--percdamp", f.percdamp, "GPTQ/BiLLM dampening, fraction of mean(diag H)")
      ->capture_default_str()->check(CLI::Range(0.0, 10.0));
  q->add_option("--blocksize", f.blocksize, "GPTQ/BiLLM block width")->capture_default_str()
      ->check(CLI::PositiveNumber);
  q->add_option("--alpha", f.alpha, "SmoothQuant migration strength")->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  q->add_flag("--qkv-output", f.qkv_output,
              "SmoothQuant: also quantize the q/k/v outputs per token (quantize_bmm_input)");
  q->add_option("--awq-n-grid", f.awq_n_grid, "AWQ scale-search grid size")
      ->capture_default_str()->check(CLI::Range(1, 1000));
  q->add_flag("--awq-duo-scaling", f.awq_duo_scaling,
              "AWQ: AutoAWQ's x^r / w^(1-r) scales instead of llm-awq's x^r");
  q->add_flag("--awq-no-clip", f.awq_no_clip, "AWQ: skip the clip search");
  q->add_option("--awq-max-shrink", f.awq_max_shrink, "AWQ clip search: largest shrink")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  q->add_option("--awq-clip-tokens", f.awq_clip_tokens, "AWQ clip search: tokens sampled")
      ->capture_default_str()->check(CLI::PositiveNumber);
  q->add_option("--billm-saliency", f.billm_saliency, "BiLLM salient metric: hessian or magnitude")
      ->capture_default_str()->check(CLI::IsMember({"hessian", "magnitude"}));
  q->add_option("--billm-up-lim", f.billm_up_lim, "BiLLM salient-column search limit")
      ->capture_default_str()->check(CLI::Range(int64_t{2}, int64_t{1} << 20));
  q->add_flag("--no-packed", f.no_packed, "Do not write the packed GPTQ layout");
  q->add_flag("--released-code", f.released_code,
              "Reproduce the study's released code: RTN ignores --group, SmoothQuant does no "
              "smoothing, AWQ skips v->o under GQA (README: faithful vs released)");
  q->add_option("--data-dir", f.data_dir, "Data folder for c4/wikitext2 calibration");
  return q;
}

int RunQuantize(const QuantizeFlags& f, const std::string& data_dir) {
  auto fail = [](const Status& s) {
    std::cerr << "bitsweep: error: " << s.message() << "\n";
    return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  };
  auto bad = [&](const std::string& msg) { return fail(absl::InvalidArgumentError(msg)); };
  auto method = quant::ParseMethod(f.method);
  if (!method.ok()) return fail(method.status());
  const quant::Method m = *method;
  if (f.group != -1 && f.group <= 0) return bad("--group must be -1 (per channel) or positive");
  if (m == quant::Method::kBillm && f.wbits != 4 && f.wbits != 1) {
    return bad("--wbits: BiLLM binarizes weights (1 bit); omit --wbits or pass 1");
  }
  if (m == quant::Method::kSmoothQuant && f.wbits < 2) {
    return bad("--wbits: SmoothQuant's symmetric grid needs 2..8 bits");
  }
  if (m != quant::Method::kSmoothQuant && (f.abits != 8 || f.qkv_output || f.alpha != 0.5)) {
    return bad("--abits, --alpha and --qkv-output apply to --method smoothquant only");
  }
  const bool awq_flags = f.awq_n_grid != 20 || f.awq_duo_scaling || f.awq_no_clip ||
                         f.awq_max_shrink != 0.5 || f.awq_clip_tokens != 512;
  if (m != quant::Method::kAwq && awq_flags) return bad("--awq-* options apply to --method awq only");
  if (m != quant::Method::kBillm && (f.billm_saliency != "hessian" || f.billm_up_lim != 50)) {
    return bad("--billm-* options apply to --method billm only");
  }
  if (m != quant::Method::kGptq && (f.act_order || f.static_groups || f.no_true_sequential)) {
    return bad("--act-order, --static-groups and --no-true-sequential apply to --method gptq only");
  }
  if (f.static_groups && !f.act_order) return bad("--static-groups needs --act-order");
  auto dtype = model::ParseComputeDType(f.dtype);
  if (!dtype.ok()) return fail(dtype.status());
  const int wbits = m == quant::Method::kBillm ? 1 : f.wbits;
  const int64_t group =
      m == quant::Method::kSmoothQuant ? -1 : m == quant::Method::kBillm ? f.blocksize : f.group;

  model::LoadOptions lo;
  lo.dtype = *dtype;
  lo.lazy_layers = true;  // the driver streams: one decoder layer in memory at a time
  auto loaded = model::Qwen3Model::Load(f.model, lo);
  if (!loaded.ok()) return fail(loaded.status());
  model::Qwen3Model& mdl = **loaded;

  quant::QuantizeOptions o;
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
  o.billm.saliency = f.billm_saliency == "magnitude" ? quant::BillmOptions::Saliency::kMagnitude
                                                     : quant::BillmOptions::Saliency::kHessian;
  {
    Status s = quant::ValidateQuantizeOptions(mdl.config(), o);
    if (!s.ok()) return fail(s);
  }

  const char* grid_name = m == quant::Method::kAwq ? "asymmetric min-max (AWQ)"
                          : m == quant::Method::kSmoothQuant
                              ? "symmetric abs-max per channel (SmoothQuant)"
                          : m == quant::Method::kBillm ? "residual binarization (BiLLM)"
                                                       : "asymmetric min-max with zero in range";
  nlohmann::json recipe = {{"method", f.method},
                           {"wbits", wbits},
                           {"group_size", group},
                           {"grid", grid_name},
                           {"symmetric", m == quant::Method::kSmoothQuant},
                           {"compute_dtype", f.dtype},
                           {"released_code", f.released_code},
                           {"source_model", f.model},
                           {"code_version", BITSWEEP_VERSION}};
  if (m == quant::Method::kGptq) {
    recipe["gptq"] = {{"percdamp", f.percdamp},
                      {"blocksize", f.blocksize},
                      {"act_order", f.act_order},
                      {"static_groups", f.static_groups},
                      {"true_sequential", !f.no_true_sequential}};
  } else if (m == quant::Method::kAwq) {
    recipe["awq"] = {{"n_grid", f.awq_n_grid},
                     {"duo_scaling", f.awq_duo_scaling},
                     {"clip", !f.awq_no_clip},
                     {"max_shrink", f.awq_max_shrink},
                     {"clip_tokens", f.awq_clip_tokens},
                     {"scale_v_to_o", !f.released_code}};
  } else if (m == quant::Method::kSmoothQuant) {
    recipe["smoothquant"] = {{"alpha", f.alpha},
                             {"smooth", !f.released_code},
                             {"abits", f.abits},
                             {"quantize_qkv_output", f.qkv_output},
                             {"activation_quantizer", "per-token symmetric abs-max, dynamic"}};
  } else if (m == quant::Method::kBillm) {
    recipe["billm"] = {{"percdamp", f.percdamp},
                       {"blocksize", f.blocksize},
                       {"up_lim", f.billm_up_lim},
                       {"saliency", f.billm_saliency}};
  }

  quant::CalibrationSet calib;
  const bool calibrated = m != quant::Method::kRtn &&
                          !(m == quant::Method::kSmoothQuant && f.released_code);
  if (calibrated) {
    const CalibDefaults d = DefaultsFor(m);
    auto tok = model::Tokenizer::Load(f.model);
    if (!tok.ok()) return fail(tok.status());
    quant::CalibrationSpec spec;
    spec.source = f.calib.empty() ? d.source : f.calib;
    spec.data_dir = data_dir;
    spec.nsamples = f.nsamples > 0 ? f.nsamples : d.nsamples;
    spec.seqlen = f.seqlen > 0 ? f.seqlen : d.seqlen;
    spec.seed = f.seed >= 0 ? static_cast<uint64_t>(f.seed) : d.seed;
    spec.procedure = d.procedure;
    auto c = quant::LoadCalibration(spec, **tok);
    if (!c.ok()) return fail(c.status());
    calib = std::move(c).value();
    recipe["calibration"] = {
        {"source", spec.source},
        {"resolved", calib.description},
        {"procedure", spec.procedure == quant::SamplingProcedure::kAwqBlocks ? "awq-blocks"
                                                                            : "gptq-windows"},
        {"nsamples", calib.samples.size()},
        {"requested_nsamples", spec.nsamples},
        {"seqlen", calib.samples.front().size()},
        {"seed", spec.seed}};
  } else if (!f.calib.empty() || f.nsamples > 0 || f.seqlen > 0 || f.seed >= 0) {
    return bad(absl::StrCat("--calib/--nsamples/--seqlen/--seed: ", f.method,
                            f.released_code ? " (released code)" : "",
                            " uses no calibration data"));
  }

  const bool packed = !f.no_packed && quant::PackableBits(wbits) &&
                      m != quant::Method::kSmoothQuant && m != quant::Method::kBillm;
  recipe["packed_requested"] = packed;
  auto writer = quant::QuantizedModelWriter::Create(f.out, f.model, mdl, packed);
  if (!writer.ok()) return fail(writer.status());
  o.layer_sink = [&](int64_t i, std::map<std::string, quant::QuantizedWeight>& w) {
    Status st = (*writer)->WriteLayer(mdl, i, w);
    // The layer's buffers are free now: hand the heap's free pages back to the kernel, so the
    // retained heap (fast for the forwards) does not grow with depth.
    malloc_trim(0);
    return st;
  };
  const bool tty = isatty(2) != 0;
  o.progress = [tty](int64_t done, int64_t total) {
    if (tty) std::fprintf(stderr, "\rquantize: layer %lld/%lld", static_cast<long long>(done),
                          static_cast<long long>(total));
    if (tty && done == total) std::fprintf(stderr, "\n");
  };
  auto r = quant::QuantizeModel(mdl, calibrated ? &calib : nullptr, o);
  if (!r.ok()) return fail(r.status());
  Status s = (*writer)->Finish(mdl, *r, recipe);
  if (!s.ok()) return fail(s);
  std::printf("quantized %zu linears with %s w%d g%lld in %.1fs; wrote %s%s\n", r->linears.size(),
              f.method.c_str(), wbits, static_cast<long long>(group), r->seconds, f.out.c_str(),
              packed ? " (+ packed/)" : "");
  for (const auto& [k, v] : r->summary) std::printf("  %s = %.6g\n", k.c_str(), v);
  return 0;
}

}  // namespace bitsweep::cli
