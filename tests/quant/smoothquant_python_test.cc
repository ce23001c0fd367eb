// Pins quant/smoothquant.cc end to end against an independent python3-torch re-implementation
// of upstream smoothquant (tests/reference/smoothquant_reference.py): QuantizeModel with
// SmoothQuant, then the activation hooks, with and without smoothing.
// Headers that pull in ATen come before Catch2 so that Catch2's CHECK overrides glog's.
#include "quant/smoothquant.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/arch.h"
#include "model/qwen3.h"
#include "model/tiny_model.h"
#include "quant/calibration_data.h"
#include "quant/method.h"
#include "quant/quantize_model.h"
#include "quant/rtn.h"
#include "tests/quant/smoothquant_testing.h"
#include "tests/testing/paths.h"
#include "tests/testing/python.h"

namespace {

using bitsweep::model::Qwen3Config;
using bitsweep::model::Qwen3Model;
using bitsweep::quant::InstallActivationQuantization;
using bitsweep::quant::smoothquant_test::Config;
using bitsweep::quant::smoothquant_test::Ids;
using bitsweep::quant::smoothquant_test::kVocab;
using bitsweep::quant::smoothquant_test::RelDiff;
using bitsweep::quant::smoothquant_test::Tensors;
using bitsweep::quant::smoothquant_test::Weights;

}  // namespace

namespace {

std::vector<std::vector<int64_t>> ToRows(const std::vector<at::Tensor>& ids) {
  std::vector<std::vector<int64_t>> rows;
  for (const auto& t : ids) {
    const at::Tensor c = t.reshape({-1}).contiguous();
    rows.emplace_back(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
  }
  return rows;
}

struct PyCase {
  bool moe;
  int wbits, abits;
  double alpha;
  bool qkv_out;
};

// Full pipeline (QuantizeModel with SmoothQuant, then InstallActivationQuantization) against
// the python reference, with and without smoothing.
void CheckAgainstPython(const PyCase& pc, const std::string& name) {
  bitsweep::testing::RequirePythonTorch();
  c10::InferenceMode guard;
  const std::string dir = bitsweep::testing::ScratchDir(name);
  const Qwen3Config c = Config(pc.moe);
  const Tensors w = Weights(c, 61, /*outliers=*/true);
  std::vector<std::pair<std::string, at::Tensor>> ordered(w.begin(), w.end());
  REQUIRE(bitsweep::model::WriteModelFolder(dir + "/model", c, ordered, "f32", 0).ok());
  const auto calib_ids = ToRows(Ids(4, 32, 71));
  const std::vector<at::Tensor> eval_t = Ids(2, 24, 72);
  const auto eval_ids = ToRows(eval_t);
  std::ofstream(dir + "/calib.json") << nlohmann::json(calib_ids).dump();
  std::ofstream(dir + "/eval.json") << nlohmann::json(eval_ids).dump();
  const std::string out_path = dir + "/ref.bin";
  bitsweep::testing::RunPython(
      bitsweep::testing::SourceDir() + "/tests/reference/smoothquant_reference.py " + dir +
          "/model " + dir + "/calib.json " + dir + "/eval.json " + std::to_string(pc.alpha) + " " +
          std::to_string(pc.wbits) + " " + std::to_string(pc.abits) + " " +
          (pc.qkv_out ? "1" : "0") + " " + out_path,
      dir + "/python.log");
  const int64_t per = 2 * 24 * kVocab;
  std::vector<double> buf(3 * per);
  std::ifstream in(out_path, std::ios::binary);
  in.read(reinterpret_cast<char*>(buf.data()), buf.size() * sizeof(double));
  REQUIRE(in.gcount() == static_cast<std::streamsize>(buf.size() * sizeof(double)));
  const at::Tensor ref = at::from_blob(buf.data(), {3, 2, 24, kVocab}, at::kDouble).clone();

  bitsweep::quant::CalibrationSet calib;
  for (const auto& r : calib_ids) calib.samples.emplace_back(r.begin(), r.end());
  const at::Tensor ids = at::cat(eval_t);
  std::vector<at::Tensor> got;
  for (bool smooth : {true, false}) {
    auto m = Qwen3Model::Load(dir + "/model");
    REQUIRE(m.ok());
    // released_code is SmoothQuant without smoothing.
    char alpha[32];
    std::snprintf(alpha, sizeof(alpha), "%.17g", pc.alpha);
    bitsweep::QuantConfig qc;
    qc.method = "smoothquant";
    qc.wbits = pc.wbits;
    qc.options["alpha"] = alpha;
    qc.options["released_code"] = smooth ? "false" : "true";
    bitsweep::quant::QuantizeOptions o;
    o.method = bitsweep::quant::MakeQuantizer(qc).value();
    auto r = bitsweep::quant::QuantizeModel(**m, &calib, o);
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    REQUIRE(InstallActivationQuantization(**m, pc.abits, pc.qkv_out).ok());
    got.push_back((*m)->Forward(ids));
  }
  auto fp = Qwen3Model::Load(dir + "/model");
  REQUIRE(fp.ok());
  const double e_fp = RelDiff((*fp)->Forward(ids), ref[2]);
  const double e_smooth = RelDiff(got[0], ref[0]);
  const double e_plain = RelDiff(got[1], ref[1]);
  const double gap = RelDiff(ref[0], ref[1]);  // what smoothing changes
  INFO("FP " << e_fp << ", smoothed " << e_smooth << ", unsmoothed " << e_plain
             << ", smoothed vs unsmoothed reference " << gap);
  CHECK(e_fp < 1e-5);
  CHECK(e_smooth < 1e-4);
  CHECK(e_plain < 1e-4);
  CHECK(gap > 100 * std::max(e_smooth, e_plain));
}

}  // namespace

TEST_CASE("Dense W8A8 SmoothQuant (q/k/v outputs quantised) matches upstream's semantics",
          "[quant][smoothquant][python]") {
  CheckAgainstPython({false, 8, 8, 0.5, true}, "sq_python_dense");
}

TEST_CASE("MoE W4A6 SmoothQuant (router in the smoothing group) matches upstream's semantics",
          "[quant][smoothquant][python]") {
  CheckAgainstPython({true, 4, 6, 0.8, false}, "sq_python_moe");
}
