#include "cli/quantize_command.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "model/qwen3.h"
#include "model/tokenizer.h"
#include "quant/calibration_data.h"
#include "quant/export.h"
#include "quant/quantize_model.h"

#ifndef BITSWEEP_VERSION
#define BITSWEEP_VERSION "dev"
#endif

namespace bitsweep::cli {

CLI::App* AddQuantizeCommand(CLI::App& app, QuantizeFlags& f) {
  auto* q = app.add_subcommand(
      "quantize", "Quantize a model folder (RTN or GPTQ) and write a Hugging Face folder");
  q->add_option("--model", f.model, "Source model folder")->required();
  q->add_option("--out", f.out, "Output folder")->required();
  q->add_option("--method", f.method, "rtn or gptq")->capture_default_str()
      ->check(CLI::IsMember({"rtn", "gptq"}));
  q->add_option("--wbits", f.wbits, "Weight bits, 1..8")->capture_default_str()
      ->check(CLI::Range(1, 8));
  q->add_option("--group", f.group, "Group size along the input features; -1 = per channel")
      ->capture_default_str();
  q->add_option("--calib", f.calib,
                "Calibration: c4, wikitext2 (from --data-dir), a .jsonl/.txt file, or a .json "
                "file of token-id arrays")->capture_default_str();
  q->add_option("--nsamples", f.nsamples, "Calibration samples")->capture_default_str()
      ->check(CLI::PositiveNumber);
  q->add_option("--seqlen", f.seqlen, "Calibration sample length")->capture_default_str()
      ->check(CLI::Range(2, 1 << 20));
  q->add_option("--seed", f.seed, "Calibration sampling seed (CPython random.seed)")
      ->capture_default_str();
  q->add_option("--dtype", f.dtype, "Compute dtype of calibration: fp32 or bf16")
      ->capture_default_str()->check(CLI::IsMember({"fp32", "bf16"}));
  q->add_flag("--act-order", f.act_order, "GPTQ: quantize columns by descending Hessian diagonal");
  q->add_flag("--static-groups", f.static_groups, "GPTQ with --act-order: groups fixed up front");
  q->add_flag("--no-true-sequential", f.no_true_sequential,
              "GPTQ: one Hessian pass per layer instead of {k,v,q}|{o}|{up,gate}|{down}");
  q->add_option("--percdamp", f.percdamp, "GPTQ dampening, fraction of mean(diag H)")
      ->capture_default_str();
  q->add_option("--blocksize", f.blocksize, "GPTQ lazy-update block width")->capture_default_str()
      ->check(CLI::PositiveNumber);
  q->add_flag("--released-code", f.released_code,
              "Reproduce the study's released code (RTN ignores --group)");
  q->add_option("--data-dir", f.data_dir, "Data folder for c4/wikitext2 calibration");
  return q;
}

int RunQuantize(const QuantizeFlags& f, const std::string& data_dir) {
  auto fail = [](const Status& s) {
    std::cerr << "bitsweep: error: " << s.message() << "\n";
    return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  };
  if (f.group != -1 && f.group <= 0) {
    return fail(absl::InvalidArgumentError("--group must be -1 (per channel) or positive"));
  }
  auto method = quant::ParseMethod(f.method);
  if (!method.ok()) return fail(method.status());
  auto dtype = model::ParseComputeDType(f.dtype);
  if (!dtype.ok()) return fail(dtype.status());
  model::LoadOptions lo;
  lo.dtype = *dtype;
  auto m = model::Qwen3Model::Load(f.model, lo);
  if (!m.ok()) return fail(m.status());
  auto tok = model::Tokenizer::Load(f.model);
  if (!tok.ok()) return fail(tok.status());

  quant::QuantizeOptions o;
  o.method = *method;
  o.grid.bits = f.wbits;
  o.grid.group_size = f.group;
  o.gptq.percdamp = f.percdamp;
  o.gptq.blocksize = f.blocksize;
  o.gptq.act_order = f.act_order;
  o.gptq.static_groups = f.static_groups;
  o.true_sequential = !f.no_true_sequential;
  o.released_code = f.released_code;
  const bool tty = isatty(2) != 0;
  o.progress = [tty](int64_t done, int64_t total) {
    if (tty) std::fprintf(stderr, "\rquantize: layer %lld/%lld", static_cast<long long>(done),
                          static_cast<long long>(total));
    if (tty && done == total) std::fprintf(stderr, "\n");
  };

  nlohmann::json recipe = {{"method", f.method},
                           {"wbits", f.wbits},
                           {"group_size", f.group},
                           {"grid", "asymmetric min-max with zero in range (GPTQ/RTN)"},
                           {"symmetric", false},
                           {"compute_dtype", f.dtype},
                           {"released_code", f.released_code},
                           {"source_model", f.model},
                           {"code_version", BITSWEEP_VERSION}};
  quant::CalibrationSet calib;
  if (o.method != quant::Method::kRtn) {
    quant::CalibrationSpec spec;
    spec.source = f.calib;
    spec.data_dir = data_dir;
    spec.nsamples = f.nsamples;
    spec.seqlen = f.seqlen;
    spec.seed = f.seed;
    auto c = quant::LoadCalibration(spec, **tok);
    if (!c.ok()) return fail(c.status());
    calib = std::move(c).value();
    recipe["calibration"] = {{"source", f.calib},
                             {"resolved", calib.description},
                             {"nsamples", calib.samples.size()},
                             {"seqlen", calib.samples.front().size()},
                             {"seed", f.seed}};
    recipe["gptq"] = {{"percdamp", f.percdamp},
                      {"blocksize", f.blocksize},
                      {"act_order", f.act_order},
                      {"static_groups", f.static_groups},
                      {"true_sequential", !f.no_true_sequential}};
  }
  auto r = quant::QuantizeModel(**m, o.method == quant::Method::kRtn ? nullptr : &calib, o);
  if (!r.ok()) return fail(r.status());
  Status s = quant::WriteQuantizedModel(f.out, f.model, **m, *r, recipe);
  if (!s.ok()) return fail(s);
  std::printf("quantized %zu linears with %s w%d g%lld in %.1fs; wrote %s\n", r->linears.size(),
              f.method.c_str(), f.wbits, static_cast<long long>(f.group), r->seconds,
              f.out.c_str());
  return 0;
}

}  // namespace bitsweep::cli
