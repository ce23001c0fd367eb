// bitsweep-make-corpus: writes the seeded synthetic corpus (tools/corpus.h) as WikiText-style
// text (raw rows, or joined as the evaluation joins them with --joined), or as C4-style JSONL
// documents with --jsonl.
#include <fstream>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/wikitext.h"
#include "tools/corpus.h"

int main(int argc, char** argv) {
  bitsweep::tools::CorpusOptions o;
  std::string out;
  size_t docs = 0, doc_bytes = 4000;
  bool joined = false;
  CLI::App app{"Write bitsweep's seeded synthetic corpus"};
  app.add_option("--out", out, "Output file")->required();
  app.add_option("--seed", o.seed)->capture_default_str();
  app.add_option("--bytes", o.bytes, "Approximate size (text mode)")->capture_default_str();
  app.add_option("--jsonl", docs, "Write N JSONL documents instead of text");
  app.add_option("--doc-bytes", doc_bytes, "Approximate bytes per JSONL document")
      ->capture_default_str();
  app.add_flag("--joined", joined,
               "Text mode: join the rows as the WikiText-2 evaluation does (blank lines between "
               "rows), the layout calibration text should have");
  CLI11_PARSE(app, argc, argv);
  std::ofstream f(out, std::ios::binary);
  if (!f) {
    std::cerr << "bitsweep-make-corpus: error: cannot write " << out << "\n";
    return 1;
  }
  if (docs > 0) {
    for (const auto& d : bitsweep::tools::GenerateDocuments(o.seed, docs, doc_bytes)) {
      f << nlohmann::json({{"text", d}}).dump() << "\n";
    }
  } else {
    const std::string text = bitsweep::tools::GenerateCorpus(o);
    f << (joined ? bitsweep::JoinWikiTextRows(text) : text);
  }
  return 0;
}
