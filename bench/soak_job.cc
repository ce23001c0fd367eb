// bench_soak_job: the job process of bench/soak's workers, in place of `bitsweep-worker run-job`
// (worker/job_process.h: the same argv, progress file, result file and exit codes). It does no
// quantization or evaluation: it reports progress, sleeps $BITSWEEP_SOAK_JOB_MS (default 500)
// milliseconds, +-50 % at random, and writes two metrics taken from its spec (soak_wbits,
// soak_group), so the soak can check that each result landed on its own job. Everything around
// it (leasing, heartbeats, the spool, Complete, the coordinator, PostgreSQL) is the real code.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>

namespace {

// Writes `text` to `path` atomically (a temporary file renamed into place), as run-job does.
bool WriteAtomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string spec_path, result_path, progress_path;
  for (int i = 1; i + 1 < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--spec") spec_path = argv[i + 1];
    if (flag == "--result") result_path = argv[i + 1];
    if (flag == "--progress") progress_path = argv[i + 1];
  }
  if (spec_path.empty() || result_path.empty() || progress_path.empty()) {
    std::fprintf(stderr, "bench_soak_job: needs --spec, --result and --progress\n");
    return 1;
  }
  std::ifstream in(spec_path);
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json spec = nlohmann::json::parse(text.str(), nullptr, false);
  if (!spec.is_object() || !spec.contains("quant")) {
    WriteAtomically(result_path, R"({"error": "bench_soak_job: unreadable spec", "code": 3})");
    return 2;
  }
  const char* ms_env = std::getenv("BITSWEEP_SOAK_JOB_MS");
  const int ms = ms_env != nullptr ? std::atoi(ms_env) : 500;
  std::mt19937 rng(std::random_device{}());
  const int sleep_ms = ms <= 0 ? 0 : std::uniform_int_distribution<int>(ms / 2, ms + ms / 2)(rng);
  WriteAtomically(progress_path, "0\tsoak");
  std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms / 2));
  WriteAtomically(progress_path, "0.5\tsoak");
  std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms - sleep_ms / 2));
  const nlohmann::json result = {
      {"metrics",
       {{{"name", "soak_wbits"}, {"value", spec["quant"].value("wbits", -1)}, {"stderr", 0},
         {"n", 1}},
        {{"name", "soak_group"}, {"value", spec["quant"].value("group_size", -1)}, {"stderr", 0},
         {"n", 1}}}},
      {"provenance", {{"runner", "bench_soak_job"}, {"sleep_ms", sleep_ms}}}};
  if (!WriteAtomically(result_path, result.dump())) return 1;
  WriteAtomically(progress_path, "1\tsoak");
  return 0;
}
