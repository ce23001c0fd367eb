#include "tests/testing/python.h"

#include <catch2/catch.hpp>
#include <cstdlib>

#include "tests/testing/process.h"

namespace bitsweep::testing {

void RequirePythonTorch() {
  static const bool ok = std::system((std::string(kPython) +
                                      " -c 'import numpy, torch; torch.zeros(1)' > /dev/null 2>&1")
                                         .c_str()) == 0;
  if (!ok) {
    FAIL(kPython << " cannot import torch and numpy, which this reference test needs: "
                    "apt install python3-torch (scripts/setup installs it)");
  }
}

void RunPython(const std::string& args, const std::string& log) {
  RequirePythonTorch();
  const int rc =
      std::system((std::string(kPython) + " " + args + " >> '" + log + "' 2>&1").c_str());
  if (rc != 0) FAIL(kPython << " " << args << " failed (" << rc << "):\n" << Slurp(log));
}

}  // namespace bitsweep::testing
