// Calibration samples for the layer-wise quantizers, drawn as the study's code draws them
// (docs/study-protocol.md#1-calibration-defaults-per-method), or given explicitly so that two runs
// or two implementations use exactly the same token sequences.
//
// Sources (`spec`):
//   "c4"            C4 training documents: <data_dir>/c4/c4-train.*.json[l] (JSONL {"text"}).
//   "wikitext2"     WikiText-2 train: <data_dir>/wikitext2/wiki.train.raw (rows joined "\n\n").
//   PATH.json       a JSON array of arrays of token ids, used as is (nsamples/seqlen ignored).
//   PATH.jsonl      any JSONL file of {"text"} documents, sampled like "c4".
//   PATH (other)    a plain text file, sampled like "wikitext2".
// Document sources use GPTQ's procedure (CPython random.seed(seed); pick a random document until
// it has more than seqlen tokens; a random offset in it); text streams take random windows
// (GPTQ's wikitext2 loader: randint(0, len - seqlen - 1)).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace bitsweep::model {
class Tokenizer;
}

namespace bitsweep::quant {

// How samples are drawn from a document source (c4, .jsonl):
//   kGptqWindows  GPTQ/BiLLM get_c4: a random document with more than seqlen tokens, a random
//                 window of seqlen tokens in it; nsamples windows.
//   kAwqBlocks    llm-awq get_calib_dataset: documents in a seeded shuffled order (CPython
//                 random.shuffle; llm-awq shuffles with HF datasets' numpy generator, which is not
//                 reproduced), stripped, those with more than seqlen tokens skipped, the first
//                 nsamples kept, concatenated and cut into blocks of seqlen (fewer than nsamples
//                 blocks). Text-stream sources always use GPTQ's random windows.
enum class SamplingProcedure { kGptqWindows, kAwqBlocks };

struct CalibrationSpec {
  std::string source = "c4";
  SamplingProcedure procedure = SamplingProcedure::kGptqWindows;
  std::string data_dir;
  int64_t nsamples = 128;
  int64_t seqlen = 2048;
  uint64_t seed = 0;
};

struct CalibrationSet {
  std::vector<std::vector<int32_t>> samples;  // each of length seqlen (or as given)
  std::string description;                    // resolved file and procedure, for provenance
};

StatusOr<CalibrationSet> LoadCalibration(const CalibrationSpec& spec,
                                         const model::Tokenizer& tokenizer);

}  // namespace bitsweep::quant
