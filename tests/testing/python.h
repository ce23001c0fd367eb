// The Python reference for [python] tests: Debian's /usr/bin/python3 with torch and numpy
// (python3-torch, which scripts/setup installs). A test that needs the reference and cannot
// run it FAILs: a parity check that quietly passes without its reference checks nothing.
// Tests whose reference output does not depend on live inputs compare with committed golden
// files instead (tests/golden/, tests/testing/golden.h) and need no Python.
#pragma once

#include <string>

namespace bitsweep::testing {

// The interpreter the references run under.
inline constexpr char kPython[] = "/usr/bin/python3";

// FAILs the current test, saying how to install it, unless kPython imports torch and numpy
// (checked once per process).
void RequirePythonTorch();

// Runs `kPython <args>` (after RequirePythonTorch) with standard output and error appended to
// `log`; FAILs the current test with the log's text when it exits non-zero.
void RunPython(const std::string& args, const std::string& log);

}  // namespace bitsweep::testing
