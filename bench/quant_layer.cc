// bench/quant_layer: the per-layer entry point of every calibrated method of the catalog at
// Qwen3 layer shapes, each as seconds per decoder layer and as a ratio to the plain FP forward of
// the same layer over the same calibration tokens, measured in the same run. Each method runs at
// its catalog defaults, and also per channel where it takes a group size and without
// calibration data where an option turns that off; the numbers the method reports in
// `summary` are printed after it. bench_quant times the whole driver per method; this isolates
// the layer entry points (hidden test cases that printed WARNs before). With --reference it also
// times GPTQ against the original IST-DASLab procedure (bench/reference/gptq_layer.py).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "bench/shapes.h"
#include "common/catalog.h"
#include "common/job_spec.h"
#include "model/qwen3.h"
#include "model/runtime.h"
#include "model/tiny_model.h"
#include "quant/method.h"

namespace {

namespace model = bitsweep::model;
namespace quant = bitsweep::quant;

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// One fresh one-layer model (the methods change its weights) and its calibration inputs.
struct Layer {
  std::unique_ptr<model::Qwen3Model> m;
  model::RopeTables rope;
  std::vector<at::Tensor> xs;
  quant::LayerJob job;
};

std::unique_ptr<Layer> MakeLayer(const model::Qwen3Config& c,
                                 const std::vector<at::Tensor>& inputs) {
  auto m = model::Qwen3Model::FromTensors(c, model::RandomQwen3Weights(c, 1));
  if (!m.ok()) {
    std::fprintf(stderr, "%s\n", m.status().ToString().c_str());
    std::exit(1);
  }
  auto l = std::make_unique<Layer>();
  l->m = std::move(m).value();
  l->rope = l->m->MakeRope(inputs.front().size(1));
  for (const auto& x : inputs) l->xs.push_back(x.clone());  // the methods replace *job.xs
  l->job.model = l->m.get();
  l->job.index = 0;
  l->job.prefix = "model.layers.0.";
  l->job.xs = &l->xs;
  l->job.rope = &l->rope;
  return l;
}

// The configurations of `row` this bench times: its defaults; per channel where it takes a
// group size; without calibration data where one of its options turns that off.
std::vector<bitsweep::QuantConfig> Configs(const bitsweep::MethodInfo& row) {
  bitsweep::QuantConfig base;
  base.method = row.name;
  base.wbits = row.default_wbits;
  base.abits = row.takes_abits ? row.default_abits : 0;
  base.group_size = row.group_size_applies ? row.default_group_size : -1;
  std::vector<bitsweep::QuantConfig> out = {base};
  if (row.group_size_applies && base.group_size != -1) {
    out.push_back(base);
    out.back().group_size = -1;
  }
  if (*row.no_calibration_option != '\0') {
    out.push_back(base);
    out.back().options[row.no_calibration_option] = "true";
  }
  return out;
}

// GPTQ w4 g128 with act-order and true-sequential groups, through the method's entry point,
// against bench/reference/gptq_layer.py (the original code's procedure, five layer forwards and
// seven fasterquant calls) on the same shapes, token counts and thread count. Returns the exit
// status.
int CompareWithReference(const model::Qwen3Config& c, const std::vector<at::Tensor>& inputs,
                         const model::TinyModelOptions& o, double fp_s) {
  bitsweep::QuantConfig qc;
  qc.method = "gptq";
  qc.wbits = 4;
  qc.group_size = 128;
  qc.options["act_order"] = "true";
  qc.options["true_sequential"] = "true";
  auto quantizer = quant::MakeQuantizer(qc);
  if (!quantizer.ok()) {
    std::fprintf(stderr, "%s\n", quantizer.status().ToString().c_str());
    return 1;
  }
  auto l = MakeLayer(c, inputs);
  quant::QuantizeResult out;
  const auto t0 = std::chrono::steady_clock::now();
  const bitsweep::Status st = (*quantizer)->QuantizeLayer(l->job, &out);
  const double ours = Seconds(t0);
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    return 1;
  }
  const std::string command = absl::StrCat(
      BITSWEEP_BENCH_DIR "/reference/gptq_layer.py --hidden ", o.hidden_size,
      " --intermediate ", o.intermediate_size, " --heads ", o.num_heads, " --kv-heads ",
      o.num_kv_heads, " --head-dim ", o.head_dim, " --nsamples ", inputs.size(), " --seqlen ",
      inputs.front().size(1), " --wbits 4 --group 128 --act-order --threads ",
      at::get_num_threads());
  FILE* pipe = popen(command.c_str(), "r");
  double theirs = -1;
  if (pipe != nullptr) {
    char line[256];
    while (std::fgets(line, sizeof(line), pipe) != nullptr) {
      std::sscanf(line, "seconds %lf", &theirs);
    }
    const int rc = pclose(pipe);
    if (rc != 0) theirs = -1;
  }
  if (theirs <= 0) {
    std::fprintf(stderr, "the reference did not run: %s\n", command.c_str());
    return 1;
  }
  std::printf("GPTQ w4 g128 act-order, true-sequential, one layer (%.1fx the FP forward here):\n",
              ours / fp_s);
  std::printf("  bitsweep %8.2f s   reference (IST-DASLab procedure, python3-torch) %8.2f s   "
              "ratio %.2f\n", ours, theirs, ours / theirs);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> calibrated;
  for (const bitsweep::MethodInfo* row : bitsweep::QuantizationMethods()) {
    if (row->needs_calibration) calibrated.push_back(row->name);
  }
  std::string shape = "0.6b", methods = absl::StrJoin(calibrated, ",");
  int64_t nsamples = 16, seqlen = 512;
  CLI::App app{"Seconds per decoder layer of each calibrated method vs the FP forward"};
  app.add_option("--shape", shape, "0.6b or 8b layer shapes")
      ->capture_default_str()
      ->check(CLI::IsMember({"0.6b", "8b"}));
  app.add_option("--nsamples", nsamples, "Calibration samples")->capture_default_str();
  app.add_option("--seqlen", seqlen, "Calibration sample length")->capture_default_str();
  app.add_option("--methods", methods, "Comma-separated methods of the catalog")
      ->capture_default_str();
  bool reference = false;
  app.add_flag("--reference", reference,
               "Also time GPTQ (w4 g128, act-order, true-sequential) against the original "
               "IST-DASLab procedure in python3-torch (bench/reference/gptq_layer.py) on the same "
               "shapes and thread count, and print the ratio");
  CLI11_PARSE(app, argc, argv);
  std::vector<const bitsweep::MethodInfo*> chosen;
  for (size_t b = 0, e; b <= methods.size(); b = e + 1) {
    e = methods.find(',', b);
    if (e == std::string::npos) e = methods.size();
    auto row = bitsweep::LookupMethod(methods.substr(b, e - b));
    if (!row.ok() || (*row)->baseline) {
      std::fprintf(stderr, "--methods: \"%s\" is not a quantization method\n",
                   methods.substr(b, e - b).c_str());
      return 2;
    }
    chosen.push_back(*row);
  }
  // The driver's runtime settings (its retained heap matters: without it page faults tripled
  // AWQ's time).
  model::ConfigureRuntime();
  c10::InferenceMode guard;

  const model::TinyModelOptions o = bitsweep::bench::Qwen3LayerShapes(shape, 1);
  const model::Qwen3Config c = model::TinyConfig(o, 1024);
  at::manual_seed(1);
  std::vector<at::Tensor> inputs;
  for (int64_t k = 0; k < nsamples; ++k) inputs.push_back(at::randn({1, seqlen, o.hidden_size}));
  std::printf(
      "bench/quant_layer: Qwen3-%s layer shapes, %lld x %lld calibration tokens, threads %d\n",
      shape.c_str(), static_cast<long long>(nsamples), static_cast<long long>(seqlen),
      at::get_num_threads());

  // The reference: the layer's FP forward over the same tokens.
  double fp_s = 0;
  {
    auto l = MakeLayer(c, inputs);
    (void)l->m->RunLayer(0, l->xs.front(), l->rope);  // warm-up
    const auto t0 = std::chrono::steady_clock::now();
    for (auto& x : l->xs) x = l->m->RunLayer(0, x, l->rope);
    fp_s = Seconds(t0);
  }
  std::printf("  %-34s %8.2f s\n", "FP forward of the layer", fp_s);
  auto report = [&](const std::string& what, double s, const bitsweep::Status& st) {
    if (!st.ok()) {
      std::printf("  %-34s %s\n", what.c_str(), st.ToString().c_str());
      return;
    }
    std::printf("  %-34s %8.2f s per layer  %6.1fx the FP forward\n", what.c_str(), s, s / fp_s);
  };

  for (const bitsweep::MethodInfo* row : chosen) {
    for (const bitsweep::QuantConfig& qc : Configs(*row)) {
      const std::string what = bitsweep::DescribeQuant(qc);
      auto quantizer = quant::MakeQuantizer(qc);
      if (!quantizer.ok()) {
        report(what, 0, quantizer.status());
        continue;
      }
      auto l = MakeLayer(c, inputs);
      quant::QuantizeResult out;
      const auto t0 = std::chrono::steady_clock::now();
      const bitsweep::Status st = (*quantizer)->QuantizeLayer(l->job, &out);
      report(what, Seconds(t0), st);
      if (st.ok() && !out.summary.empty()) {
        std::vector<std::string> numbers;
        for (const auto& [name, value] : out.summary) {
          char text[32];
          std::snprintf(text, sizeof(text), " %.3f", value);
          numbers.push_back(name + text);
        }
        std::printf("  %-34s %s\n", "", absl::StrJoin(numbers, ", ").c_str());
      }
    }
  }
  if (reference) return CompareWithReference(c, inputs, o, fp_s);
  return 0;
}
