// Golden files: small reference outputs committed under tests/golden/, each written by the
// script beside it (tests/golden/<name>.py), so a test compares with an independent reference
// without running it. A golden text file starts with the line
//   bitsweep-golden <name> <version>
// and a test asks for the version it understands: a file in another format, or a missing one,
// FAILs the test with the command that regenerates it.
#pragma once

#include <string>

namespace bitsweep::testing {

// The path of tests/golden/<file> in the source tree.
std::string GoldenPath(const std::string& file);

// The text after the header line of tests/golden/<name>.txt. FAILs the current test, naming
// tests/golden/<name>.py, when the file is missing or its header is not
// "bitsweep-golden <name> <version>".
std::string ReadGolden(const std::string& name, int version);

}  // namespace bitsweep::testing
