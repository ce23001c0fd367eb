#include "cli/service_commands.h"

#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bitsweep/v1/coordinator.grpc.pb.h"
#include "common/cpus.h"
#include "common/job_spec.h"
#include "common/labels.h"
#include "common/process.h"
#include "common/results_table.h"
#include "common/status.h"
#include "dashboard/assets.h"
#include "store/local_postgres.h"

namespace bitsweep::cli {
namespace {

namespace fs = std::filesystem;
namespace pb = bitsweep::v1;
using nlohmann::json;

int Fail(const Status& s) {
  std::cerr << "bitsweep: error: " << s.message() << "\n";
  return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// Set by SIGINT/SIGTERM during `bitsweep local`: stop watching and tear everything down.
std::atomic<bool> g_interrupted{false};
void OnInterrupt(int) { g_interrupted = true; }

class Client {
 public:
  explicit Client(const ServiceFlags& f) : token_(f.token) {
    std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
    if (!f.tls_ca.empty()) {
      grpc::SslCredentialsOptions ssl;
      ssl.pem_root_certs = Slurp(f.tls_ca);
      creds = grpc::SslCredentials(ssl);
    }
    stub_ = pb::Coordinator::NewStub(grpc::CreateChannel(f.coordinator, creds));
  }
  void Prepare(grpc::ClientContext* ctx, int seconds = 30) const {
    if (seconds > 0) {
      ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    }
    if (!token_.empty()) ctx->AddMetadata("authorization", "Bearer " + token_);
  }
  pb::Coordinator::Stub* operator->() { return stub_.get(); }

 private:
  std::string token_;
  std::unique_ptr<pb::Coordinator::Stub> stub_;
};

std::string RequestId() {
  std::random_device rd;
  std::mt19937_64 g(
      (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
      static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count()));
  return absl::StrFormat("%016x%016x", g(), g());
}

std::string SweepLine(const pb::Sweep& s) {
  const int64_t done = s.succeeded() + s.failed() + s.canceled();
  const int width = 30;
  const int filled = s.total() > 0 ? static_cast<int>(width * done / s.total()) : 0;
  return absl::StrFormat(
      "sweep %d %-12s [%s%s] %d/%d  succeeded %d  failed %d  canceled %d  running %d  pending %d",
      s.id(), s.name(), std::string(filled, '#'), std::string(width - filled, '.'), done, s.total(),
      s.succeeded(), s.failed(), s.canceled(), s.leased(), s.pending());
}

StatusOr<pb::SubmitSweepResponse> Submit(Client& c, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(path + ": cannot open sweep file");
  pb::SubmitSweepRequest req;
  req.set_request_id(RequestId());
  req.set_sweep_yaml(Slurp(path));
  req.set_source_name(fs::path(path).filename().string());
  pb::SubmitSweepResponse resp;
  grpc::ClientContext ctx;
  c.Prepare(&ctx, 120);
  RETURN_IF_ERROR(FromGrpc(c->SubmitSweep(&ctx, req, &resp)));
  return resp;
}

// Polls GetSweep (robust across coordinator restarts) until the sweep is finished.
StatusOr<pb::Sweep> Watch(Client& c, int64_t sweep_id, bool print, FILE* out = stdout) {
  const bool tty = isatty(fileno(out)) != 0;
  std::string last;
  int unavailable = 0;
  while (true) {
    pb::GetSweepRequest req;
    req.set_sweep_id(sweep_id);
    pb::Sweep s;
    grpc::ClientContext ctx;
    c.Prepare(&ctx);
    grpc::Status st = c->GetSweep(&ctx, req, &s);
    if (!st.ok()) {
      if (st.error_code() == grpc::StatusCode::UNAVAILABLE && ++unavailable < 120) {
        std::this_thread::sleep_for(std::chrono::seconds(1));
        continue;
      }
      return FromGrpc(st);
    }
    unavailable = 0;
    const std::string line = SweepLine(s);
    if (print && line != last) {
      if (tty) {
        std::fprintf(out, "\r%s", line.c_str());
      } else {
        std::fprintf(out, "%s\n", line.c_str());
      }
      std::fflush(out);
      last = line;
    }
    if (s.finished()) {
      if (print && tty) std::fprintf(out, "\n");
      return s;
    }
    if (g_interrupted) return absl::CancelledError("interrupted");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

Status WriteOutput(const std::string& path, const std::string& text) {
  if (path.empty() || path == "-") {
    std::cout << text;
    return absl::OkStatus();
  }
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  if (!out) return absl::UnavailableError(absl::StrCat("--output: cannot write '", path, "'"));
  std::fprintf(stderr, "bitsweep: wrote %s\n", path.c_str());
  return absl::OkStatus();
}

// The study's table (common/results_table.h): a row per model and recipe (FP baseline first), a
// column per task and evaluation settings; as text, csv, markdown, json rows, or a
// self-contained HTML report.
int PrintResults(Client& c, int64_t sweep_id, const std::string& format,
                 const std::string& output = "") {
  pb::QueryResultsRequest req;
  req.set_sweep_id(sweep_id);
  pb::QueryResultsResponse resp;
  grpc::ClientContext ctx;
  c.Prepare(&ctx, 120);
  Status st = FromGrpc(c->QueryResults(&ctx, req, &resp));
  if (!st.ok()) return Fail(st);
  if (format == "json") {
    json rows = json::array();
    for (const auto& r : resp.rows()) {
      rows.push_back({{"job_id", r.job_id()},
                      {"job_key", r.job_key()},
                      {"spec", json::parse(r.spec_json(), nullptr, false)},
                      {"metric", r.metric().name()},
                      {"value", r.metric().value()},
                      {"stderr", r.metric().stderr()},
                      {"n", r.metric().n()},
                      {"provenance", json::parse(r.provenance_json(), nullptr, false)}});
    }
    st = WriteOutput(output, rows.dump(2) + "\n");
    return st.ok() ? 0 : Fail(st);
  }
  std::vector<ResultInput> inputs;
  inputs.reserve(resp.rows_size());
  for (const auto& r : resp.rows()) {
    inputs.push_back({r.job_id(), r.spec_json(), r.metric().name(), r.metric().value(),
                      r.metric().stderr(), r.metric().n(), r.provenance_json()});
  }
  const ResultsTable table = PivotResults(inputs);
  if (format == "html") {
    const std::string title =
        sweep_id > 0 ? absl::StrCat("bitsweep results: sweep ", sweep_id) : "bitsweep results";
    st = WriteOutput(output, dashboard::RenderReport(title, ResultsTableToJson(table)));
    return st.ok() ? 0 : Fail(st);
  }
  if (table.rows.empty()) {
    st = WriteOutput(output, "no results yet\n");
    return st.ok() ? 0 : Fail(st);
  }
  std::vector<std::vector<std::string>> lines;
  std::vector<std::string> header = {"model", "quantization"};
  for (const auto& col : table.columns) header.push_back(col.name);
  lines.push_back(header);
  for (const auto& row : table.rows) {
    std::vector<std::string> line = {row.model, row.label};
    for (const auto& col : table.columns) {
      auto it = row.cells.find(col.name);
      line.push_back(it == row.cells.end() ? "-" : FormatResultValue(col, it->second.value));
    }
    lines.push_back(line);
  }
  std::string text;
  // Subset columns are named so in every format; the text formats also say what that means.
  const bool any_subset = std::any_of(table.columns.begin(), table.columns.end(),
                                      [](const ResultsColumn& c) { return c.subset; });
  const std::string subset_note =
      "(subset): computed on the first windows (perplexity) or examples (other tasks) only, as "
      "limited by the sweep; not comparable with results on the whole data.\n";
  if (format == "csv") {
    for (const auto& l : lines) {
      for (size_t i = 0; i < l.size(); ++i) absl::StrAppend(&text, i ? "," : "", l[i]);
      text += "\n";
    }
    st = WriteOutput(output, text);
    return st.ok() ? 0 : Fail(st);
  }
  std::vector<size_t> w(header.size(), 0);
  for (const auto& l : lines) {
    for (size_t i = 0; i < l.size(); ++i) w[i] = std::max(w[i], l[i].size());
  }
  for (size_t r = 0; r < lines.size(); ++r) {
    std::string out = format == "markdown" ? "| " : "";
    for (size_t i = 0; i < lines[r].size(); ++i) {
      out += absl::StrFormat("%-*s", static_cast<int>(w[i]), lines[r][i]);
      out += format == "markdown" ? " | " : "  ";
    }
    absl::StrAppend(&text, out, "\n");
    if (r == 0) {
      std::string rule = format == "markdown" ? "|" : "";
      for (size_t i = 0; i < w.size(); ++i) {
        rule += std::string(w[i] + (format == "markdown" ? 2 : 0), '-');
        rule += format == "markdown" ? "|" : "  ";
      }
      absl::StrAppend(&text, rule, "\n");
    }
  }
  if (any_subset) absl::StrAppend(&text, "\n", subset_note);
  st = WriteOutput(output, text);
  return st.ok() ? 0 : Fail(st);
}

std::string ExeDir() {
  std::error_code ec;
  return fs::read_symlink("/proc/self/exe", ec).parent_path().string();
}

// A sibling binary: next to this one (installed) or in its build folder.
StatusOr<std::string> FindBinary(const std::string& name, const std::string& build_subdir) {
  const std::string dir = ExeDir();
  for (const std::string& p : {dir + "/" + name, dir + "/../" + build_subdir + "/" + name}) {
    if (fs::exists(p)) return fs::canonical(p).string();
  }
  return absl::NotFoundError(absl::StrCat(name, " not found next to ", dir));
}

void Stop(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    if (waitpid(pid, nullptr, WNOHANG) == pid) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

int RunLocal(const ServiceFlags& f, const std::string& data_dir) {
  auto coordinator_bin = FindBinary("bitsweep-coordinator", "server");
  if (!coordinator_bin.ok()) return Fail(coordinator_bin.status());
  auto worker_bin = FindBinary("bitsweep-worker", "worker");
  if (!worker_bin.ok()) return Fail(worker_bin.status());
  if (!fs::exists(f.sweep_file)) {
    return Fail(absl::NotFoundError(f.sweep_file + ": cannot open sweep file"));
  }
  const fs::path state = fs::absolute(f.state_dir);
  // Ctrl-C stops the workers, the coordinator and PostgreSQL instead of orphaning them.
  signal(SIGINT, OnInterrupt);
  signal(SIGTERM, OnInterrupt);
  fs::create_directories(state / "logs");
  std::fprintf(stderr, "local: state in %s (PostgreSQL data, artifacts, logs)\n", state.c_str());
  store::LocalPostgresOptions po;
  po.data_dir = (state / "postgres").string();
  auto pg = store::LocalPostgres::Start(po);
  if (!pg.ok()) return Fail(pg.status());
  std::string conninfo = (*pg)->ConnInfo("bitsweep");
  {
    auto created = (*pg)->CreateDatabase("bitsweep");  // fails harmlessly when it exists
    if (created.ok()) conninfo = *created;
  }
  std::fprintf(stderr, "local: PostgreSQL on 127.0.0.1:%d\n", (*pg)->port());
  const int port = FreePort();
  const std::string addr = absl::StrCat("127.0.0.1:", port);
  const int metrics_port = FreePort();
  const int http_port = FreePort();
  pid_t coord = SpawnLogged({*coordinator_bin, "--listen", addr, "--db", conninfo,
                             "--metrics-listen", absl::StrCat("127.0.0.1:", metrics_port),
                             "--http-listen", absl::StrCat("127.0.0.1:", http_port)},
                            (state / "logs" / "coordinator.log").string());
  std::fprintf(stderr,
               "local: coordinator on %s (metrics on 127.0.0.1:%d/metrics, dashboard on "
               "http://127.0.0.1:%d/)\n",
               addr.c_str(), metrics_port, http_port);
  // Workers share this machine's CPUs: N workers each running every core's worth of OpenMP
  // threads oversubscribe it and spin against each other (common/cpus.h).
  const int threads_per_worker = f.threads_per_worker > 0
                                     ? f.threads_per_worker
                                     : std::max(1, AvailableCpus() / std::max(1, f.workers));
  std::vector<pid_t> workers;
  for (int i = 0; i < f.workers; ++i) {
    std::vector<std::string> argv = {*worker_bin,
                                     "--coordinator",
                                     addr,
                                     "--name",
                                     absl::StrCat("local-", i),
                                     "--artifacts",
                                     (state / "artifacts").string(),
                                     "--data-dir",
                                     data_dir,
                                     "--poll-seconds",
                                     "0.5"};
    if (f.devices_per_worker > 0) {
      for (const char* flag : {"--devices", "--max-tp"}) {
        argv.push_back(flag);
        argv.push_back(std::to_string(f.devices_per_worker));
      }
    }
    argv.push_back("--threads");
    argv.push_back(std::to_string(threads_per_worker));
    workers.push_back(
        SpawnLogged(argv, (state / "logs" / absl::StrCat("worker-", i, ".log")).string()));
  }
  std::fprintf(stderr, "local: %d workers (logs in %s)\n", f.workers, (state / "logs").c_str());
  auto shutdown = [&]() {
    for (pid_t w : workers) Stop(w);
    Stop(coord);
  };
  ServiceFlags cf = f;
  cf.coordinator = addr;
  Client client(cf);
  StatusOr<pb::SubmitSweepResponse> sub = absl::UnavailableError("coordinator not up");
  for (int i = 0; i < 100 && !sub.ok() && sub.status().code() == absl::StatusCode::kUnavailable;
       ++i) {
    sub = Submit(client, f.sweep_file);
    if (!sub.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  if (!sub.ok()) {
    shutdown();
    return Fail(sub.status());
  }
  std::fprintf(
      stderr, "local: submitted sweep %lld \"%s\": %lld jobs%s\n",
      static_cast<long long>(sub->sweep().id()), sub->sweep().name().c_str(),
      static_cast<long long>(sub->sweep().total()),
      sub->skipped_size() ? absl::StrCat(", ", sub->skipped_size(), " skipped").c_str() : "");
  for (const auto& s : sub->skipped()) {
    std::fprintf(stderr, "  skipped %s: %s\n", s.description().c_str(), s.reason().c_str());
  }
  auto done = Watch(client, sub->sweep().id(), true, stderr);
  int rc = 0;
  if (!done.ok()) {
    rc = Fail(done.status());
  } else {
    rc = PrintResults(client, sub->sweep().id(), f.format);
    if (done->failed() > 0) {
      std::fprintf(stderr, "local: %lld jobs failed (see `bitsweep status` or the worker logs)\n",
                   static_cast<long long>(done->failed()));
      rc = rc ? rc : 1;
    }
  }
  shutdown();
  return rc;
}

}  // namespace

void AddServiceCommands(CLI::App& app, ServiceFlags& f) {
  if (const char* t = std::getenv("BITSWEEP_CLIENT_TOKEN")) f.token = t;
  if (const char* c = std::getenv("BITSWEEP_COORDINATOR")) f.coordinator = c;
  auto common = [&](CLI::App* c) {
    c->add_option("--coordinator", f.coordinator,
                  "Coordinator address (default $BITSWEEP_COORDINATOR or 127.0.0.1:50051)");
    c->add_option("--token", f.token, "Client bearer token (default $BITSWEEP_CLIENT_TOKEN)");
    c->add_option("--tls-ca", f.tls_ca, "CA certificate: use TLS to the coordinator");
  };
  auto* submit = app.add_subcommand("submit", "Submit a sweep file (YAML) to the coordinator");
  submit->add_option("sweep", f.sweep_file, "Sweep file")->required();
  submit->add_flag("--wait", f.wait, "Watch the sweep until it finishes");
  common(submit);
  auto* status = app.add_subcommand("status", "Sweeps (or one sweep's jobs) and their states");
  status->add_option("sweep_id", f.sweep_id, "A sweep id (default: list sweeps)");
  common(status);
  auto* watch = app.add_subcommand("watch", "Live progress of a sweep until it finishes");
  watch->add_option("sweep_id", f.sweep_id, "Sweep id")->required();
  common(watch);
  auto* results = app.add_subcommand(
      "results",
      "Results pivoted like the study's tables: a row per model and recipe (method, bits, group, "
      "options, calibration), a column per task and evaluation settings (seqlen, windows or "
      "limit, shots, batch, dtype, data file); subsets are marked");
  results->add_option("sweep_id", f.sweep_id, "Sweep id (default: every sweep)");
  results
      ->add_option("--format", f.format,
                   "table, csv, json, markdown, or html (one self-contained page with the "
                   "dashboard's tables and plots)")
      ->capture_default_str()
      ->check(CLI::IsMember({"table", "csv", "json", "markdown", "html"}));
  results->add_option("--output", f.output, "Write to this file instead of standard output");
  common(results);
  auto* cancel = app.add_subcommand("cancel", "Cancel a sweep (or one job with --job)");
  cancel->add_option("sweep_id", f.sweep_id, "Sweep id");
  cancel->add_option("--job", f.job_id, "Cancel this job instead");
  common(cancel);
  for (const char* name : {"coordinator", "worker"}) {
    auto* c =
        app.add_subcommand(name, absl::StrCat("Run the ", name, " (runs bitsweep-", name,
                                              " with the arguments that follow; see its --help)"));
    c->prefix_command(true);
    c->set_help_flag();
  }
  auto* local = app.add_subcommand(
      "local",
      "Run a sweep on this machine: a private PostgreSQL, the coordinator and N workers; prints "
      "the results table and stops what it started");
  local->add_option("sweep", f.sweep_file, "Sweep file")->required();
  local->add_option("--workers", f.workers, "Worker processes")->capture_default_str();
  local
      ->add_option("--state-dir", f.state_dir,
                   "PostgreSQL data, artifacts and logs (kept: a rerun reuses stored results)")
      ->capture_default_str();
  local->add_option(
      "--threads-per-worker", f.threads_per_worker,
      "CPU threads per worker job (0 = the available CPUs divided among the workers)");
  local
      ->add_option("--devices-per-worker", f.devices_per_worker,
                   "Devices each worker offers (also its largest tensor-parallel size); a job "
                   "with resources {devices: N, tp: N} runs as N rank processes")
      ->check(CLI::Range(0, 64));
  local->add_option("--format", f.format, "Results format: table, csv, json or markdown")
      ->capture_default_str();
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
  if (parsed("submit")) {
    auto r = Submit(client, f.sweep_file);
    if (!r.ok()) return Fail(r.status());
    std::printf("sweep %lld \"%s\": %lld jobs%s\n", static_cast<long long>(r->sweep().id()),
                r->sweep().name().c_str(), static_cast<long long>(r->sweep().total()),
                r->replayed() ? " (already submitted)" : "");
    for (const auto& s : r->skipped()) {
      std::printf("  skipped %s: %s\n", s.description().c_str(), s.reason().c_str());
    }
    if (f.wait) {
      auto w = Watch(client, r->sweep().id(), true);
      if (!w.ok()) return Fail(w.status());
    }
    return 0;
  }
  if (parsed("watch")) {
    auto w = Watch(client, f.sweep_id, true);
    return w.ok() ? 0 : Fail(w.status());
  }
  if (parsed("results")) return PrintResults(client, f.sweep_id, f.format, f.output);
  if (parsed("cancel")) {
    grpc::ClientContext ctx;
    client.Prepare(&ctx);
    if (f.job_id > 0) {
      pb::CancelJobRequest req;
      req.set_job_id(f.job_id);
      pb::Job job;
      Status s = FromGrpc(client->CancelJob(&ctx, req, &job));
      if (!s.ok()) return Fail(s);
      std::printf("job %lld canceled\n", static_cast<long long>(f.job_id));
      return 0;
    }
    pb::CancelSweepRequest req;
    req.set_sweep_id(f.sweep_id);
    pb::Sweep s;
    Status st = FromGrpc(client->CancelSweep(&ctx, req, &s));
    if (!st.ok()) return Fail(st);
    std::printf("%s\n", SweepLine(s).c_str());
    return 0;
  }
  if (parsed("status")) {
    grpc::ClientContext ctx;
    client.Prepare(&ctx);
    if (f.sweep_id == 0) {
      pb::ListSweepsResponse resp;
      Status st = FromGrpc(client->ListSweeps(&ctx, pb::ListSweepsRequest(), &resp));
      if (!st.ok()) return Fail(st);
      for (const auto& s : resp.sweeps()) std::printf("%s\n", SweepLine(s).c_str());
      return 0;
    }
    pb::ListJobsRequest req;
    req.set_sweep_id(f.sweep_id);
    pb::ListJobsResponse resp;
    Status st = FromGrpc(client->ListJobs(&ctx, req, &resp));
    if (!st.ok()) return Fail(st);
    // Labels name the settings that tell apart jobs whose short labels are equal.
    std::vector<JobSpec> specs;
    std::vector<bool> readable;
    for (const auto& j : resp.jobs()) {
      auto spec = JobSpecFromJson(j.spec_json());
      readable.push_back(spec.ok());
      specs.push_back(spec.ok() ? *spec : JobSpec{});
    }
    const std::vector<JobLabel> labels = LabelJobs(specs);
    for (int i = 0; i < resp.jobs_size(); ++i) {
      const auto& j = resp.jobs(i);
      std::printf("job %-5lld %-18s attempt %d/%d  %-28s %-12s %s%s\n",
                  static_cast<long long>(j.id()), pb::JobState_Name(j.state()).c_str() + 10,
                  j.attempt(), j.max_attempts(), readable[i] ? labels[i].quant.c_str() : "?",
                  readable[i] ? labels[i].eval.c_str() : "?", j.phase().c_str(),
                  j.error().empty() ? "" : ("  error: " + j.error()).c_str());
    }
    return 0;
  }
  return -1;
}

}  // namespace bitsweep::cli
