// `bitsweep quantize --override`: mixed precision from the command line, entries in the
// canonical text form the results label rows with; bad entries exit 2 naming the flag.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/cli/run_bitsweep.h"
#include "tests/testing/paths.h"

namespace {

using bitsweep::testing::cli::Bitsweep;
using bitsweep::testing::cli::Run;
using bitsweep::testing::cli::Slurp;
using Catch::Matchers::Contains;

}  // namespace

TEST_CASE("bitsweep quantize --override writes a mixed recipe with its average bits", "[cli]") {
  const std::string dir = bitsweep::testing::ScratchDir("cli_override");
  const std::string demo = bitsweep::testing::SourceDir() + "/models/demo";
  Run r = Bitsweep("quantize --model " + demo +
                       " --method rtn --wbits 3 --group 64 --override L0:w4 --override "
                       "down_proj:w2 --override L3:q_proj:fp --out " + dir + "/q",
                   dir);
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Contains("avg_wbits = "));
  const nlohmann::json q = nlohmann::json::parse(Slurp(dir + "/q/quantization_config.json"));
  CHECK(q["overrides_text"] == "down_proj:w2g64 L0:w4g64 L0:down_proj:w2g64 L3:q_proj:fp");
  CHECK(q["avg_wbits"].get<double>() > 3.0);
  const nlohmann::json pc = nlohmann::json::parse(Slurp(dir + "/q/packed/config.json"));
  CHECK(pc["quantization_config"]["dynamic"].size() > 0);
  Run e = Bitsweep("eval --model " + dir + "/q/packed --tasks wikitext2 --max-windows 2 --seqlen 64 "
                   "--data-dir " + demo + "/heldout",
                   dir);
  INFO(e.err);
  CHECK(e.code == 0);

  Run bad = Bitsweep("quantize --model " + demo + " --method rtn --wbits 3 --override L0:w9 --out " +
                         dir + "/bad",
                     dir);
  CHECK(bad.code == 2);
  CHECK_THAT(bad.err, Contains("--override[0].wbits: rtn takes"));
  Run syntax = Bitsweep("quantize --model " + demo + " --method rtn --override L0:x4 --out " + dir +
                            "/bad",
                        dir);
  CHECK(syntax.code == 2);
  CHECK_THAT(syntax.err, Contains("--override"));
}
