#include "cli/quantize_command.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "model/tp_run.h"
#include "quant/pipeline.h"

namespace bitsweep::cli {

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
      ->capture_default_str()
      ->check(CLI::Range(1, 8));
  q->add_option("--abits", f.abits, "SmoothQuant activation bits, 2..8 (applied at evaluation)")
      ->capture_default_str()
      ->check(CLI::Range(2, 8));
  q->add_option("--group", f.group,
                "Group size along the input features; -1 = per channel (smoothquant: per "
                "channel always; billm: its 128-column blocks)")
      ->capture_default_str();
  q->add_option("--calib", f.calib,
                "Calibration: c4, wikitext2 (from --data-dir), a .jsonl/.txt file, or a .json "
                "file of token-id arrays (default c4)");
  q->add_option("--nsamples", f.nsamples, "Calibration samples (default: per method)")
      ->check(CLI::PositiveNumber);
  q->add_option("--seqlen", f.seqlen, "Calibration sample length (default: per method)")
      ->check(CLI::Range(2, 1 << 20));
  q->add_option("--seed", f.seed,
                "Calibration sampling seed, CPython random (default: per "
                "method)")
      ->check(CLI::NonNegativeNumber);
  q->add_option("--dtype", f.dtype, "Compute dtype of calibration: fp32 or bf16")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16"}));
  q->add_flag("--act-order", f.act_order, "GPTQ: quantize columns by descending Hessian diagonal");
  q->add_flag("--static-groups", f.static_groups, "GPTQ with --act-order: groups fixed up front");
  q->add_flag("--no-true-sequential", f.no_true_sequential,
              "GPTQ: one Hessian pass per layer instead of {k,v,q}|{o}|{up,gate}|{down}");
  q->add_option("--percdamp", f.percdamp, "GPTQ/BiLLM dampening, fraction of mean(diag H)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 10.0));
  q->add_option("--blocksize", f.blocksize, "GPTQ/BiLLM block width")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  q->add_option("--alpha", f.alpha, "SmoothQuant migration strength")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  q->add_flag("--qkv-output", f.qkv_output,
              "SmoothQuant: also quantize the q/k/v outputs per token (quantize_bmm_input)");
  q->add_option("--awq-n-grid", f.awq_n_grid, "AWQ scale-search grid size")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  q->add_flag("--awq-duo-scaling", f.awq_duo_scaling,
              "AWQ: AutoAWQ's x^r / w^(1-r) scales instead of llm-awq's x^r");
  q->add_flag("--awq-no-clip", f.awq_no_clip, "AWQ: skip the clip search");
  q->add_option("--awq-max-shrink", f.awq_max_shrink, "AWQ clip search: largest shrink")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  q->add_option("--awq-clip-tokens", f.awq_clip_tokens, "AWQ clip search: tokens sampled")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  q->add_option("--billm-saliency", f.billm_saliency, "BiLLM salient metric: hessian or magnitude")
      ->capture_default_str()
      ->check(CLI::IsMember({"hessian", "magnitude"}));
  q->add_option("--billm-up-lim", f.billm_up_lim, "BiLLM salient-column search limit")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 20));
  q->add_flag("--no-packed", f.no_packed, "Do not write the packed GPTQ layout");
  q->add_flag("--released-code", f.released_code,
              "Reproduce the study's released code: RTN ignores --group, SmoothQuant does no "
              "smoothing, AWQ skips v->o under GQA (README: faithful vs released)");
  q->add_option("--data-dir", f.data_dir, "Data folder for c4/wikitext2 calibration");
  q->add_option("--tp", f.tp,
                "Tensor-parallel size: run as N rank processes (Gloo on CPU), each holding 1/N "
                "of the model; the output is the same as with 1")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  return q;
}

int RunQuantize(const QuantizeFlags& f, const std::string& data_dir) {
  quant::QuantizeRequest request = f;
  request.data_dir = data_dir;
  auto tp = model::StartTensorParallel(f.tp);
  if (!tp.ok()) {
    std::cerr << "bitsweep: error: " << tp.status().message() << "\n";
    return 2;
  }
  if (tp->launched) return tp->rc;
  const bool tty = isatty(2) != 0 && tp->rank == 0;
  auto r = quant::QuantizeFolder(
      request,
      [tty](int64_t done, int64_t total) {
        if (tty)
          std::fprintf(stderr, "\rquantize: layer %lld/%lld", static_cast<long long>(done),
                       static_cast<long long>(total));
        if (tty && done == total) std::fprintf(stderr, "\n");
      },
      tp->tp);
  if (!r.ok()) {
    std::cerr << "bitsweep: error" << (f.tp > 1 ? absl::StrCat(" (rank ", tp->rank, ")") : "")
              << ": " << r.status().message() << "\n";
    return r.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  std::printf("quantized %lld linears with %s w%d g%lld in %.1fs; wrote %s%s\n",
              static_cast<long long>(r->linears), f.method.c_str(), r->wbits,
              static_cast<long long>(r->group), r->seconds, f.out.c_str(),
              r->packed ? " (+ packed/)" : "");
  for (const auto& [k, v] : r->summary) std::printf("  %s = %.6g\n", k.c_str(), v);
  return 0;
}

}  // namespace bitsweep::cli
