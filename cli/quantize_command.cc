#include "cli/quantize_command.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/flags.h"
#include "common/catalog.h"
#include "common/mixed_precision.h"
#include "common/sweep_inputs.h"
#include "model/tp_run.h"
#include "quant/pipeline.h"

namespace bitsweep::cli {

namespace {

std::string OptionHelp(const MethodOption& o) {
  std::string range;
  switch (o.type) {
    case OptionType::kBool:
      break;
    case OptionType::kInt:
      range = absl::StrCat(static_cast<int64_t>(o.min), "..", static_cast<int64_t>(o.max));
      break;
    case OptionType::kDouble:
      range = absl::StrCat(o.min, "..", o.max);
      break;
    case OptionType::kChoice:
      range = absl::StrJoin(absl::StrSplit(o.choices, '|'), ", ");
      break;
  }
  std::string needs;
  for (const MethodOption* other : AllOptions()) {
    if (o.requires_option == std::string_view(other->name)) {
      needs = absl::StrCat("; needs ", OptionFlag(*other));
    }
  }
  return absl::StrCat(o.help, " [", OptionOwners(o.name), "; ",
                      range.empty() ? "" : absl::StrCat(range, ", "), "default ", o.default_value,
                      needs, "]");
}

std::string MethodsSummary() {
  std::vector<std::string> names, calib, wbits;
  for (const MethodInfo* m : QuantizationMethods()) {
    names.push_back(m->name);
    wbits.push_back(absl::StrCat(BitsRange(m->min_wbits, m->max_wbits), " (", m->name, ")"));
    const CalibrationDefaults& c = m->calibration;
    if (m->needs_calibration) {
      calib.push_back(absl::StrCat(m->name, " ", c.source, " ", c.nsamples, "x", c.seqlen, " seed ",
                                   c.seed, " (", c.procedure, ")"));
    }
  }
  return absl::StrCat(
      "Quantize a model folder with ", absl::StrJoin(names, ", "),
      " and write a Hugging Face folder (dequantized weights, quantization_config.json, and for "
      "weight-only methods at 2/3/4/8 bits the packed GPTQ layout in <out>/packed). Weight bits: ",
      absl::StrJoin(wbits, ", "),
      ". Calibration defaults follow the study (docs/study-protocol.md): ", absl::StrJoin(calib, "; "),
      ". What each method computes: docs/methods.md.");
}

}  // namespace

CLI::App* AddQuantizeCommand(CLI::App& app, QuantizeFlags& f) {
  auto* q = app.add_subcommand("quantize", MethodsSummary());
  std::vector<std::string> methods;
  std::string abits_help = "Activation bits (applied at evaluation):";
  int min_wbits = 64, max_wbits = 0, min_abits = 64, max_abits = 0;
  for (const MethodInfo* m : QuantizationMethods()) {
    methods.push_back(m->name);
    min_wbits = std::min(min_wbits, m->min_wbits);
    max_wbits = std::max(max_wbits, m->max_wbits);
    if (m->takes_abits) {
      min_abits = std::min(min_abits, m->min_abits);
      max_abits = std::max(max_abits, m->max_abits);
      absl::StrAppend(&abits_help, " ", BitsRange(m->min_abits, m->max_abits), " (", m->name,
                      ", default ", m->default_abits, ")");
    }
  }
  q->add_option("--model", f.model, "Source model folder")->required();
  q->add_option("--out", f.out, "Output folder (replaced atomically at the end)")->required();
  q->add_option("--method", f.method, absl::StrCat(absl::StrJoin(methods, ", "), " (any case)"))
      ->capture_default_str()
      ->transform(QuantizationMethodFlag());
  // Checked against --method (whose value is set first: options run in the order added) as it
  // is parsed, so a width the method cannot take is reported before any missing flag.
  q->add_option_function<int>(
       "--wbits",
       [&f](const int& v) {
         auto row = LookupMethod(f.method);
         if (row.ok() && (v < (*row)->min_wbits || v > (*row)->max_wbits)) {
           const MethodInfo& m = **row;
           throw CLI::ValidationError(
               "--wbits", absl::StrCat(m.name, *m.wbits_note ? " " : "", m.wbits_note,
                                       *m.wbits_note ? ": it" : "", " takes ",
                                       BitsRange(m.min_wbits, m.max_wbits), " weight bit",
                                       m.max_wbits > 1 ? "s" : "", ", got ", v));
         }
         f.wbits = v;
       },
       "Weight bits, in the method's range (default: 4, or the method's only width)")
      ->check(CLI::Range(min_wbits, max_wbits));
  q->add_option_function<int>(
       "--abits", [&f](const int& v) { f.abits = v; }, abits_help)
      ->check(CLI::Range(min_abits, max_abits));
  q->add_option_function<int64_t>(
      "--group", [&f](const int64_t& v) { f.group = v; },
      "Group size along the input features; -1 = per channel (default 128 where a group size "
      "applies)");
  q->add_option_function<std::string>(
      "--calib", [&f](const std::string& v) { f.calib = v; },
      "Calibration: c4, wikitext2 (from --data-dir), a .jsonl/.txt file, or a .json file of "
      "token-id arrays (default c4)");
  q->add_option_function<int64_t>(
       "--nsamples", [&f](const int64_t& v) { f.nsamples = v; },
       "Calibration samples (default: per method)")
      ->check(CLI::PositiveNumber);
  q->add_option_function<int64_t>(
       "--seqlen", [&f](const int64_t& v) { f.seqlen = v; },
       "Calibration sample length (default: per method)")
      ->check(CLI::Range(2, 1 << 20));
  q->add_option_function<int64_t>(
       "--seed", [&f](const int64_t& v) { f.seed = v; },
       "Calibration sampling seed, CPython random (default: per method)")
      ->check(CLI::NonNegativeNumber);
  q->add_option("--dtype", f.dtype,
                "Compute dtype of calibration: fp32, bf16, or auto (bf16 on CUDA, fp32 on the "
                "CPU)")
      ->capture_default_str()
      ->transform(DTypeFlag({"auto", "fp32", "bf16"}));
  q->add_option("--device", f.device,
                "cpu, cuda, cuda:N, or auto (CUDA when this build has it and a GPU is visible, "
                "else cpu)")
      ->capture_default_str();
  // One flag per method option of the catalog; the pipeline checks that the method takes it.
  for (const MethodOption* o : AllOptions()) {
    const std::string name = o->name;
    if (o->type == OptionType::kBool) {
      const std::string value = o->default_value == std::string_view("true") ? "false" : "true";
      q->add_flag_function(
          OptionFlag(*o), [&f, name, value](int64_t) { f.options[name] = value; }, OptionHelp(*o));
    } else {
      q->add_option_function<std::string>(
           OptionFlag(*o), [&f, name](const std::string& v) { f.options[name] = v; },
           OptionHelp(*o))
          ->type_name(o->type == OptionType::kInt      ? "INT"
                      : o->type == OptionType::kDouble ? "FLOAT"
                                                       : "CHOICE");
    }
  }
  q->add_option_function<std::vector<std::string>>(
       "--override",
       [&f](const std::vector<std::string>& entries) {
         for (const std::string& e : entries) {
           auto o = ParseOverrideEntry(e);
           if (!o.ok()) throw CLI::ValidationError("--override", std::string(o.status().message()));
           f.overrides.push_back(*o);
         }
       },
       "Mixed precision, repeatable, later entries win: [L<layers>:][<linear>:]<precision>, "
       "precision fp (keep in full precision), w<bits>, g<group> or w<bits>g<group>; e.g. "
       "--override L0-3:w4 --override down_proj:w4g64 (docs/methods.md#mixed-precision)")
      ->type_name("ENTRY");
  q->add_flag("--no-packed", f.no_packed, "Do not write the packed GPTQ layout");
  q->add_option("--data-dir", f.data_dir, "Data folder for c4/wikitext2 calibration");
  q->add_option("--tp", f.tp,
                "Tensor-parallel size: run as N rank processes (Gloo on CPU; on CUDA one GPU per "
                "rank from --device on, over NCCL), each holding 1/N "
                "of the model; the output is the same as with 1")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  return q;
}

int RunQuantize(const QuantizeFlags& f, const std::string& data_dir) {
  if (Status s = CheckModelFolder(f.model); !s.ok()) {
    std::cerr << "bitsweep: error: --model: " << s.message() << "\n";
    return 2;
  }
  quant::QuantizeRequest request = f;
  request.data_dir = data_dir;
  auto tp = model::StartTensorParallel(f.tp, f.device);
  if (!tp.ok()) {
    std::cerr << "bitsweep: error: " << tp.status().message() << "\n";
    return 2;
  }
  if (tp->launched) return tp->rc;
  request.device = tp->device.str();  // this rank's: cuda:N+rank under tensor parallelism
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
