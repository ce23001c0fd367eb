// README.md's generated sections are the catalog's: regenerate them and compare.
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <string>

#include "common/catalog.h"
#include "tests/testing/paths.h"

namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE(
    "README.md holds the catalog's generated option and task tables verbatim "
    "(refresh with `bitsweep catalog --markdown`)") {
  const std::string readme = Slurp(bitsweep::testing::SourceDir() + "/README.md");
  const std::string generated = bitsweep::ReadmeGeneratedSections();
  // Each section, markers included, must appear as generated.
  size_t start = 0;
  int sections = 0;
  while (true) {
    const size_t begin = generated.find("<!-- BEGIN generated: ", start);
    if (begin == std::string::npos) break;
    const std::string end_marker = "<!-- END generated: ";
    const size_t end = generated.find('\n', generated.find(end_marker, begin));
    const std::string section = generated.substr(begin, end + 1 - begin);
    INFO("README.md lacks this section as generated:\n" << section);
    CHECK(readme.find(section) != std::string::npos);
    start = end + 1;
    ++sections;
  }
  CHECK(sections == 2);
}

TEST_CASE("Every option of the generated table has a flag and every method a row") {
  const std::string md = bitsweep::MethodOptionsMarkdown();
  for (const bitsweep::MethodInfo* m : bitsweep::QuantizationMethods()) {
    CHECK(md.find(std::string("| `") + m->name + "` |") != std::string::npos);
    for (const bitsweep::MethodOption* o : m->options) {
      CHECK(md.find("`" + bitsweep::OptionFlag(*o) + "`") != std::string::npos);
    }
  }
  CHECK(bitsweep::OptionFlag(**bitsweep::LookupOption(
            **bitsweep::LookupMethod("gptq"), "true_sequential")) == "--no-true-sequential");
  CHECK(bitsweep::OptionFlag(**bitsweep::LookupOption(**bitsweep::LookupMethod("awq"),
                                                      "awq_n_grid")) == "--awq-n-grid");
}
