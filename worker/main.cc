// bitsweep-worker: leases jobs from a coordinator and runs them (quantize once per artifact,
// then evaluate), one child process per job. `bitsweep-worker run-job ...` is that child.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "model/cuda_info.h"
#include "model/runtime.h"
#include "model/tp_run.h"
#include "worker/device_offer.h"
#include "worker/job_process.h"
#include "worker/service.h"

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }
}  // namespace

int main(int argc, char** argv) {
  bitsweep::model::SetCommandLine(argc, argv);  // a tensor-parallel job relaunches run-job
  CLI::App app{
      "bitsweep-worker: registers with a coordinator, leases jobs that fit this machine and runs "
      "them (quantize once per artifact, then evaluate), each in a child process."};
  bitsweep::worker::WorkerOptions o;
  if (const char* t = std::getenv("BITSWEEP_WORKER_TOKEN")) o.token = t;
  app.add_option("--coordinator", o.coordinator, "Coordinator address host:port")
      ->capture_default_str();
  app.add_option("--name", o.name,
                 "Worker name, unique among live workers (default <host>-<random>, kept in the "
                 "state directory)");
  app.add_option("--token", o.token, "Worker bearer token (default $BITSWEEP_WORKER_TOKEN)");
  app.add_option("--tls-ca", o.tls_ca, "CA certificate: use TLS to the coordinator");
  app.add_option("--tls-cert", o.tls_cert, "Client certificate (mutual TLS)");
  app.add_option("--tls-key", o.tls_key, "Client key (mutual TLS)");
  app.add_option("--artifacts", o.artifact_root, "Shared directory of quantized models")
      ->required();
  app.add_option("--data-dir", o.data_dir, "Evaluation and calibration data folder");
  app.add_option("--model-root", o.roots.model,
                 "Folder a job's model path must lie in, symbolic links resolved (repeatable; "
                 "none: not confined)");
  app.add_option("--data-root", o.roots.data,
                 "Folder a job's .jsonl task and calibration file must lie in (repeatable; none: "
                 "not confined)");
  bitsweep::worker::DeviceFlags df;
  app.add_option("--device", df.device,
                 "auto (the GPUs this process sees when the build has CUDA, else the CPU), cpu, "
                 "or cuda (refuse to start without a GPU). Each job process gets exactly the "
                 "GPUs it leased through CUDA_VISIBLE_DEVICES, one tensor-parallel rank per GPU")
      ->capture_default_str();
  app.add_option("--devices", df.devices,
                 "Devices offered to one job (default 1 on the CPU; on GPUs it must equal the "
                 "GPUs visible, and $BITSWEEP_EXPECT_GPUS when set, or the worker refuses to "
                 "start)");
  app.add_option("--memory-gb", df.memory_gb,
                 "Memory offered to one job, and its memory budget (default: unspecified on the "
                 "CPU; on GPUs, per GPU: the smallest GPU's memory, and no more)");
  app.add_option("--max-tp", df.max_tp,
                 "Largest tensor-parallel size (default 1 on the CPU, the GPU count on GPUs)");
  std::vector<std::string> labels;
  app.add_option("--label", labels, "Label KEY=VALUE stored with the registration (repeatable)");
  app.add_option("--poll-seconds", o.poll_seconds, "Wait between empty leases")
      ->capture_default_str();
  app.add_option("--idle-exit-seconds", o.idle_exit_seconds,
                 "Exit after this long without a job (0 = never)")
      ->capture_default_str();
  app.add_option("--state-dir", o.state_dir,
                 "Directory kept across restarts: finished results not yet delivered, the "
                 "default name, the session (default $XDG_STATE_HOME/bitsweep/worker/"
                 "<name>@<coordinator>, else under ~/.local/state; one worker per directory)");
  app.add_option("--metrics-listen", o.metrics_listen,
                 "Serve Prometheus metrics on host:port/metrics (e.g. 127.0.0.1:9465; \"\" = "
                 "off); plain HTTP unless --metrics-tls-cert, so a non-loopback host needs "
                 "HTTPS or --insecure-allow-remote");
  app.add_option("--metrics-tls-cert", o.metrics_tls_cert,
                 "Server certificate (PEM) for /metrics over HTTPS: names this host as "
                 "Prometheus scrapes it (not the --tls-cert client certificate)");
  app.add_option("--metrics-tls-key", o.metrics_tls_key, "Private key of --metrics-tls-cert");
  app.add_option("--metrics-tls-ca", o.metrics_tls_ca,
                 "CA certificate: /metrics requires a client certificate it signed (mutual TLS)");
  app.add_flag("--insecure-allow-remote", o.insecure_allow_remote,
               "allow a non-loopback --metrics-listen over plain HTTP (trusted networks only)");
  bitsweep::model::RuntimeOptions ro;
  app.add_option("--threads", ro.threads,
                 "CPU threads per job (0 = OMP_NUM_THREADS, else the CPUs this process may use)")
      ->capture_default_str();

  std::string spec, result, progress;
  bitsweep::worker::ChildOptions child;
  auto* run = app.add_subcommand("run-job", "(internal) run one job spec in this process");
  run->add_option("--spec", spec)->required();
  run->add_option("--result", result)->required();
  run->add_option("--progress", progress)->required();
  run->add_option("--artifacts", child.artifact_root);
  run->add_option("--data-dir", child.data_dir);
  run->add_option("--device", child.device);
  run->add_option("--max-memory-bytes", child.max_memory_bytes);
  run->add_option("--model-root", child.roots.model);
  run->add_option("--data-root", child.roots.data);
  app.get_option("--artifacts")->required(false);
  CLI11_PARSE(app, argc, argv);

  if (run->parsed()) {
    bitsweep::model::ConfigureRuntime(ro);
    return bitsweep::worker::RunJobChild(spec, result, progress, child);
  }
  if (o.artifact_root.empty()) {
    std::cerr << "bitsweep-worker: --artifacts is required\n";
    return 2;
  }
  o.threads = ro.threads;
  if (const char* expect = std::getenv("BITSWEEP_EXPECT_GPUS"); expect != nullptr && *expect) {
    int n = -1;
    if (!absl::SimpleAtoi(expect, &n) || n < 0) {
      std::cerr << "bitsweep-worker: BITSWEEP_EXPECT_GPUS=\"" << expect
                << "\": expected a number of GPUs\n";
      return 2;
    }
    df.expect_gpus = n;
  }
  if (const char* visible = std::getenv("CUDA_VISIBLE_DEVICES")) df.cuda_visible_devices = visible;
  // Discovery only when GPUs may be used: --device cpu never touches the CUDA runtime.
  auto offer = bitsweep::worker::PlanDeviceOffer(
      df, df.device == "cpu" ? bitsweep::StatusOr<std::vector<bitsweep::model::CudaDeviceInfo>>(
                                   std::vector<bitsweep::model::CudaDeviceInfo>{})
                             : bitsweep::model::ListCudaDevices());
  if (!offer.ok()) {
    std::cerr << "bitsweep-worker: error: " << offer.status().message() << "\n";
    return 2;
  }
  o.offer = *std::move(offer);
  for (const std::string& label : labels) {
    const auto eq = label.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::cerr << "bitsweep-worker: --label '" << label << "': expected KEY=VALUE\n";
      return 2;
    }
    o.labels[label.substr(0, eq)] = label.substr(eq + 1);
  }
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  auto s = bitsweep::worker::RunWorker(o, &g_stop);
  if (!s.ok()) {
    std::cerr << "bitsweep-worker: error: " << s.message() << "\n";
    return 1;
  }
  return 0;
}
