// Running the real `bitsweep` executable as a user would, for the CLI tests
// (bitsweep_cli_test.cc, conventions_test.cc): its exit code, standard output and error, and its
// peak memory.
#pragma once

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "tests/testing/paths.h"

namespace bitsweep::testing::cli {

struct Run {
  int code = -1;
  std::string out, err;
  long max_rss_kb = 0;  // peak resident set of the child
};

inline std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `bitsweep args` in a child; stdin from `input` when given.
inline Run Bitsweep(const std::string& args, const std::string& scratch,
                    const std::string& input = "") {
  const std::string bin = bitsweep::testing::BinaryDir() + "/cli/bitsweep";
  const std::string in = scratch + "/stdin", out = scratch + "/stdout", err = scratch + "/stderr";
  std::ofstream(in, std::ios::binary) << input;
  const std::string cmd = "exec " + bin + " " + args + " < " + in + " > " + out + " 2> " + err;
  Run r;
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  struct rusage usage {};
  wait4(pid, &status, 0, &usage);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.max_rss_kb = usage.ru_maxrss;
  r.out = Slurp(out);
  r.err = Slurp(err);
  return r;
}

inline void WriteFile(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

// A data folder with WikiText-2-style text and C4-style JSONL documents; returns its path.
inline std::string SmallDataDir(const std::string& dir) {
  std::string text;
  for (int i = 0; i < 400; ++i) text += " The cat sat on mat number " + std::to_string(i) + " .\n";
  WriteFile(dir + "/data/wikitext2/wiki.test.raw", text);
  std::string jsonl;
  for (int i = 0; i < 20; ++i) {
    jsonl +=
        nlohmann::json({{"text", std::string(300 + 10 * i, static_cast<char>('a' + i))}}).dump() +
        "\n";
  }
  WriteFile(dir + "/data/c4/docs.jsonl", jsonl);
  return dir + "/data";
}

}  // namespace bitsweep::testing::cli
