#include "quant/pipeline.h"

#include <malloc.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/catalog.h"
#include "common/job_spec.h"
#include "common/mixed_precision.h"
#include "model/arch.h"
#include "model/collective.h"
#include "model/device.h"
#include "model/linear.h"
#include "model/qwen3.h"
#include "model/runtime.h"
#include "model/tokenizer.h"
#include "quant/calibration_data.h"
#include "quant/export.h"
#include "quant/method.h"
#include "quant/packed.h"
#include "quant/quantize_model.h"

#ifndef BITSWEEP_VERSION
#define BITSWEEP_VERSION "dev"
#endif

namespace bitsweep::quant {
namespace {

Status Bad(const std::string& message) { return absl::InvalidArgumentError(message); }

// 4 MiB: below one MoE expert's fp32 weight (2048 x 768, 6 MiB). At 32 MiB the experts' weights,
// Hessians and GPTQ temporaries stayed in the heap as fragments, and GPTQ of one 30B-A3B-shaped
// layer grew to 5.6 GB of anonymous memory (3.3 GB with 4 MiB).
constexpr size_t kLargeAllocationBytes = size_t{4} << 20;

// The request's method and settings as a catalog QuantConfig (validated, defaults filled), with
// errors naming the flags.
StatusOr<QuantConfig> ResolveConfig(const QuantizeRequest& f) {
  auto found = LookupMethod(f.method);
  if (!found.ok()) return Bad(absl::StrCat("--method: ", found.status().message()));
  const MethodInfo& row = **found;
  if (row.baseline) return Bad(absl::StrCat("--method: ", row.name, " quantizes nothing"));
  if (f.abits && !row.takes_abits) {
    std::vector<std::string> takers;
    for (const MethodInfo* m : QuantizationMethods()) {
      if (m->takes_abits) takers.push_back(m->name);
    }
    return Bad(absl::StrCat("--abits applies to --method ", absl::StrJoin(takers, ", "),
                            " only, not ", row.name));
  }
  if (f.group && !row.group_size_applies) {
    return Bad(absl::StrCat("--group: ", row.name, " ", row.group_note, ", so --group does not ",
                            "apply"));
  }
  QuantConfig q;
  q.method = row.name;
  q.wbits = f.wbits.value_or(row.default_wbits);
  q.abits = f.abits.value_or(0);
  q.group_size = static_cast<int>(f.group.value_or(row.default_group_size));
  if (f.group && *f.group != q.group_size) {
    return Bad(absl::StrCat("--group: ", *f.group, " is out of range"));
  }
  q.options = f.options;
  q.overrides = f.overrides;
  return NormalizeQuantConfig(q, FieldNaming::kFlags);
}

SamplingProcedure ProcedureNamed(std::string_view name) {
  return name == "awq-blocks" ? SamplingProcedure::kAwqBlocks : SamplingProcedure::kGptqWindows;
}

}  // namespace

StatusOr<QuantizeFolderReport> QuantizeFolder(const QuantizeRequest& f,
                                              const LayerProgress& progress,
                                              std::shared_ptr<const model::Collective> tp) {
  const std::string& data_dir = f.data_dir;
  auto fail = [](const Status& s) { return s; };
  auto bad = Bad;
  ASSIGN_OR_RETURN(QuantConfig config, ResolveConfig(f));
  ASSIGN_OR_RETURN(std::shared_ptr<const Quantizer> method, MakeQuantizer(config));
  const MethodInfo& row = method->row();
  const int wbits = method->grid().bits;
  const int64_t group = method->grid().group_size;

  // Weight-sized buffers go back to the kernel when freed, so the peak is what is live (one
  // layer's tensors), not a heap fragmented by them; smaller buffers stay in the heap.
  const model::ReturnLargeAllocations return_large(kLargeAllocationBytes);

  auto device = model::ResolveDevice(f.device);
  if (!device.ok()) return bad(absl::StrCat("--device: ", device.status().message()));
  auto dtype = model::ResolveComputeDType(f.dtype, *device);
  if (!dtype.ok()) return bad(absl::StrCat("--dtype: ", dtype.status().message()));

  model::LoadOptions lo;
  lo.dtype = *dtype;
  lo.device = *device;
  lo.lazy_layers = true;  // the driver streams: one decoder layer in memory at a time
  // On a GPU the next layer is copied while one is quantized (two layers on the device).
  lo.prefetch_layers = device->is_cuda();
  // The embeddings stay mapped: calibration converts only the rows of its tokens, and the
  // writer copies embeddings and lm_head through from the source (quant/export.cc).
  lo.lazy_globals = true;
  // A method that only reads weights sees them as stored (mapped) when fp32 compute holds every
  // stored value exactly: converting a bf16 weight to fp32 at load or in the method gives the
  // same numbers.
  lo.stored_linear_weights = method->reads_weights_only() && *dtype == model::ComputeDType::kFloat32;
  lo.tp = tp;
  if ((tp ? tp->world_size() : 1) != f.tp) {
    return bad(absl::StrCat("tp = ", f.tp, " but the tensor-parallel group has ",
                            tp ? tp->world_size() : 1, " ranks"));
  }
  auto loaded = model::Qwen3Model::Load(f.model, lo);
  if (!loaded.ok()) return fail(loaded.status());
  model::Qwen3Model& mdl = **loaded;

  QuantizeOptions o;
  o.method = method;
  {
    Status s = ValidateQuantizeOptions(mdl.config(), o);
    if (!s.ok()) return fail(s);
  }

  nlohmann::json recipe = {{"method", f.method},
                           {"wbits", wbits},
                           {"group_size", group},
                           {"grid", row.grid},
                           {"symmetric", row.symmetric},
                           {"compute_dtype", model::ComputeDTypeName(*dtype)},
                           {"device", lo.device.str()},
                           {"released_code", OptionBool(config.options, "released_code")},
                           {"source_model", f.model},
                           {"code_version", BITSWEEP_VERSION},
                           // Provenance only: TP gives the same weights as one device.
                           {"tensor_parallel", mdl.tp()->world_size()}};
  if (nlohmann::json block = method->Recipe(); !block.is_null()) recipe[row.name] = block;
  if (method->mixed()) {
    nlohmann::json list = nlohmann::json::array();
    for (const QuantOverride& o : config.overrides) {
      list.push_back({{"layers", o.layers},
                      {"linear", o.linear},
                      {"wbits", o.wbits},
                      {"group_size", o.group_size}});
    }
    recipe["overrides"] = list;
    recipe["overrides_text"] = OverridesText(config.overrides);
  }

  CalibrationSet calib;
  const bool calibrated = method->calibrated();
  if (calibrated) {
    const CalibrationDefaults& d = row.calibration;
    auto tok = model::Tokenizer::Load(f.model);
    if (!tok.ok()) return fail(tok.status());
    CalibrationSpec spec;
    spec.source = f.calib.value_or(d.source);
    spec.data_dir = data_dir;
    spec.nsamples = f.nsamples.value_or(d.nsamples);
    spec.seqlen = f.seqlen.value_or(d.seqlen);
    spec.seed = static_cast<uint64_t>(f.seed.value_or(d.seed));
    spec.procedure = ProcedureNamed(d.procedure);
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
  } else if (f.calib || f.nsamples || f.seqlen || f.seed) {
    return bad(absl::StrCat(
        "--calib/--nsamples/--seqlen/--seed: ", f.method,
        row.needs_calibration ? absl::StrCat(" (", row.no_calibration_option, ")") : std::string(),
        " uses no calibration data"));
  }

  // A mixed recipe packs whichever linears have packable bits (export.h).
  const bool packed = !f.no_packed && (PackableBits(wbits) || method->mixed()) && row.packable;
  recipe["packed_requested"] = packed;
  // Under tensor parallelism rank 0 writes; the other ranks take part in its gathers.
  const bool writes = mdl.tp()->rank() == 0;
  std::unique_ptr<QuantizedModelWriter> writer;
  if (writes) {
    auto created = QuantizedModelWriter::Create(f.out, f.model, mdl, packed);
    if (!created.ok()) return fail(created.status());
    writer = std::move(created).value();
  }
  // Average weight bits of the recipe (common/mixed_precision.h: element-weighted over the
  // decoder linears, keep-FP ones at 16, no scale/zero overhead), counted from the layers as
  // they pass: under TP every rank holds the same share of each linear, so shards average alike.
  double bit_sum = 0, weight_sum = 0;
  o.layer_sink = [&](int64_t i, std::map<std::string, QuantizedWeight>& w) {
    for (const std::string& name : model::QuantizedLinears(mdl.layer(i))) {
      if (const model::Linear* lin = FindLinearIn(mdl.layer(i), name)) {
        const double n = static_cast<double>(lin->out_features() * lin->in_features());
        bit_sum += n * ResolveLinearPrecision(config, i, name).wbits;
        weight_sum += n;
      }
    }
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
  if (weight_sum > 0) recipe["avg_wbits"] = bit_sum / weight_sum;
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
  if (method->mixed() && weight_sum > 0) report.summary["avg_wbits"] = bit_sum / weight_sum;
  return report;
}

}  // namespace bitsweep::quant
