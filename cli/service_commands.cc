#include "cli/service_commands.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/client_commands.h"
#include "cli/local_command.h"
#include "cli/output.h"

namespace bitsweep::cli {

void AddServiceCommands(CLI::App& app, ServiceFlags& f) {
  if (const char* t = std::getenv("BITSWEEP_CLIENT_TOKEN")) f.token = t;
  if (const char* c = std::getenv("BITSWEEP_COORDINATOR")) f.coordinator = c;
  auto common = [&](CLI::App* c) {
    c->add_option("--coordinator", f.coordinator,
                  "Coordinator address (default $BITSWEEP_COORDINATOR or 127.0.0.1:50051)");
    c->add_option("--token", f.token, "Client bearer token (default $BITSWEEP_CLIENT_TOKEN)");
    c->add_option("--tls-ca", f.tls_ca, "CA certificate: use TLS to the coordinator");
  };
  // results and local: the same formats, unknown ones refused.
  auto format_option = [&](CLI::App* c) {
    c->add_option("--format", f.format,
                  "Results format: table, csv (method, wbits, abits, group in columns of their "
                  "own), json (every stored row, raw), markdown, latex (a booktabs tabular), or "
                  "html (one self-contained page with the dashboard's tables and plots, "
                  "accuracies in percent). table, csv and markdown add a stderr column where the "
                  "task has one and a \"vs FP\" column, the difference to the model's baseline")
        ->capture_default_str()
        ->check(CLI::IsMember({"table", "csv", "json", "markdown", "latex", "html"}));
    c->add_flag("--percent", f.percent,
                "Accuracies (value, stderr, difference) in percent, as the paper prints them "
                "(table, csv, markdown, latex)");
  };
  auto* submit = app.add_subcommand("submit", "Submit a sweep file (YAML) to the coordinator");
  submit->add_option("sweep", f.sweep_file, "Sweep file")->required();
  submit->add_flag("--wait", f.wait, "Watch the sweep until it finishes");
  common(submit);
  auto* status = app.add_subcommand("status", "Sweeps (or one sweep's jobs) and their states");
  status->add_option("sweep_id", f.sweep_id, "A sweep id (default: list sweeps)");
  status
      ->add_option("-o,--output", f.status_output,
                   "json: one array, an object per sweep or job with stable field names (ids, "
                   "state, counts, attempts, worker, error, labels, spec, Unix times, elapsed "
                   "and eta seconds); wide: a table with a header and more columns (sweeps: "
                   "priority, created, elapsed, eta; jobs: worker, attempts, elapsed, "
                   "progress, phase, reason)")
      ->check(CLI::IsMember({"json", "wide"}));
  common(status);
  auto* describe = app.add_subcommand("describe", "Everything known about one object");
  describe->require_subcommand(1);
  auto* describe_job = describe->add_subcommand(
      "job",
      "One job: its key (model, quantization, calibration, task and settings), state, attempts, "
      "worker, times, elapsed, error, artifact, metrics, every state change, spec and provenance");
  describe_job->add_option("job_id", f.job_id, "Job id (as `bitsweep status SWEEP_ID` lists)")
      ->required();
  describe_job
      ->add_option("-o,--output", f.describe_output,
                   "json: the coordinator's JobDescription message as JSON (proto field names)")
      ->check(CLI::IsMember({"json"}));
  common(describe_job);
  auto* logs = app.add_subcommand(
      "logs",
      "The output of a job's process (standard output and error, at most its last 64 KiB) from "
      "its latest attempt that ended, as its worker reported it to the coordinator");
  logs->add_option("job_id", f.job_id, "Job id (as `bitsweep status SWEEP_ID` lists)")->required();
  common(logs);
  auto* watch = app.add_subcommand("watch", "Live progress of a sweep until it finishes");
  watch->add_option("sweep_id", f.sweep_id, "Sweep id")->required();
  common(watch);
  auto* results = app.add_subcommand(
      "results",
      "Results pivoted like the study's tables: a row per model and recipe (method, bits, group, "
      "options, calibration), a column per task and evaluation settings (seqlen, windows or "
      "limit, shots, batch, dtype, data file); subsets are marked");
  results->add_option("sweep_id", f.sweep_id, "Sweep id (default: every sweep)");
  format_option(results);
  results->add_option("--output", f.output, "Write to this file instead of standard output");
  common(results);
  auto* report = app.add_subcommand(
      "report",
      "The study's report of a sweep as one self-contained HTML file: the paper's table (a row "
      "per model, method and W/A bits, FP first; WikiText-2, C4, the zero-shot tasks and MMLU; "
      "the best quantized value per model in bold), SVG charts (perplexity against bits on a "
      "log scale, accuracy drop against FP), skipped and failed cells with their reasons, and "
      "an appendix of the jobs' provenance (code version, data files, calibration, seeds)");
  report->add_option("sweep_id", f.sweep_id, "Sweep id")->required();
  report->add_option("--compare", f.compare_id,
                     "A second sweep shown side by side with the differences (B - A) per cell, "
                     "e.g. the same models and methods under another code version or "
                     "calibration");
  report->add_option("--out,--output", f.output, "Write to this file instead of standard output");
  common(report);
  auto* cancel = app.add_subcommand("cancel", "Cancel a sweep (or one job with --job)");
  cancel->add_option("sweep_id", f.sweep_id, "Sweep id");
  cancel->add_option("--job", f.job_id, "Cancel this job instead");
  common(cancel);
  for (const char* name : {"coordinator", "worker"}) {
    auto* c =
        app.add_subcommand(name, absl::StrCat("Run the ", name, " (runs bitsweep-", name,
                                              " with the arguments that follow; see its --help)"));
    c->prefix_command(true);
    c->fallthrough(false);  // every argument after the verb belongs to the binary it runs
    c->set_help_flag();
  }
  auto* local = app.add_subcommand(
      "local",
      "Run a sweep on this machine: checks the sweep's models and data, then starts a private "
      "PostgreSQL, the coordinator and N workers; prints the results table (and each failed "
      "job's error) and stops what it started, also on Ctrl-C, SIGTERM or a closed output. "
      "Exit code 0 when every job succeeded, 3 when some failed");
  local->add_option("sweep", f.sweep_file,
                    "Sweep file (relative paths in it resolve against its folder); optional with "
                    "--keep, --results, --status");
  local->add_option("--workers", f.workers, "Worker processes")->capture_default_str();
  local->add_option("--state-dir", f.state_dir,
                    "PostgreSQL data, artifacts, logs and ports (kept: a rerun reuses stored "
                    "results; default $XDG_STATE_HOME/bitsweep/local, else "
                    "~/.local/state/bitsweep/local)");
  local->add_flag("--keep", f.keep,
                  "After the sweep (or at once, without one) keep PostgreSQL, the coordinator, the "
                  "workers and the dashboard up at the printed addresses until Ctrl-C; the ports "
                  "are remembered in the state folder and reused while free");
  local->add_flag("--results", f.local_results,
                  "Print the results stored in a stopped state folder (PostgreSQL read-only) and "
                  "stop");
  local->add_flag("--status", f.local_status,
                  "Print the sweeps and jobs (with their errors) of a stopped state folder "
                  "(PostgreSQL read-only) and stop");
  local->add_option(
      "--threads-per-worker", f.threads_per_worker,
      "CPU threads per worker job (0 = the available CPUs divided among the workers)");
  local
      ->add_option("--devices-per-worker", f.devices_per_worker,
                   "Devices each worker offers (also its largest tensor-parallel size); a job "
                   "with resources {devices: N, tp: N} runs as N rank processes")
      ->check(CLI::Range(0, 64));
  format_option(local);
}

int RunServiceCommand(CLI::App& app, const ServiceFlags& f, const std::string& data_dir) {
  auto parsed = [&](const char* n) { return app.get_subcommand(n)->parsed(); };
  if (parsed("local")) return RunLocal(f, data_dir);
  for (const char* name : {"coordinator", "worker"}) {
    if (!parsed(name)) continue;
    auto bin = FindBinary(absl::StrCat("bitsweep-", name),
                          name == std::string("worker") ? "worker" : "server");
    if (!bin.ok()) return Fail(bin.status());
    std::vector<std::string> args = {*bin};
    for (const auto& a : app.get_subcommand(name)->remaining()) args.push_back(a);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    return Fail(absl::InternalError(absl::StrCat("cannot run ", *bin)));
  }
  Client client(f);
  if (parsed("submit")) return RunSubmit(client, f);
  if (parsed("watch")) return RunWatch(client, f);
  if (parsed("results")) return PrintResults(client, f.sweep_id, f.format, f.output, f.percent);
  if (parsed("cancel")) return RunCancel(client, f);
  if (parsed("report")) return RunReport(client, f);
  if (parsed("status")) return RunStatus(client, f);
  if (parsed("describe")) return RunDescribe(client, f);
  if (parsed("logs")) return RunLogs(client, f);
  return -1;
}

}  // namespace bitsweep::cli
