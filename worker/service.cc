#include "worker/service.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "bitsweep/v1/worker.grpc.pb.h"
#include "common/job_spec.h"
#include "model/tp_run.h"
#include "worker/job_runner.h"
#include "worker/metrics.h"

namespace bitsweep::worker {
namespace {

namespace fs = std::filesystem;
namespace pb = bitsweep::v1;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

Status FromGrpc(const grpc::Status& s, const std::string& what) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(what, ": ", s.error_message()));
}

class Client {
 public:
  explicit Client(const WorkerOptions& o) : o_(o) {
    std::shared_ptr<grpc::ChannelCredentials> creds;
    if (!o.tls_ca.empty()) {
      grpc::SslCredentialsOptions ssl;
      ssl.pem_root_certs = Slurp(o.tls_ca);
      if (!o.tls_cert.empty()) ssl.pem_cert_chain = Slurp(o.tls_cert);
      if (!o.tls_key.empty()) ssl.pem_private_key = Slurp(o.tls_key);
      creds = grpc::SslCredentials(ssl);
    } else {
      creds = grpc::InsecureChannelCredentials();
    }
    stub_ = pb::WorkerGateway::NewStub(grpc::CreateChannel(o.coordinator, creds));
  }

  template <typename Req, typename Resp, typename Call>
  Status Do(const char* what, const Req& req, Resp* resp, Call call) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    if (!o_.token.empty()) ctx.AddMetadata("authorization", "Bearer " + o_.token);
    return FromGrpc((stub_.get()->*call)(&ctx, req, resp), what);
  }

  pb::WorkerGateway::Stub* stub() { return stub_.get(); }

 private:
  const WorkerOptions& o_;
  std::unique_ptr<pb::WorkerGateway::Stub> stub_;
};

void Log(const std::string& name, const std::string& msg) {
  std::fprintf(stderr, "[worker %s] %s\n", name.c_str(), msg.c_str());
  std::fflush(stderr);
}

struct ChildResult {
  bool ok = false;
  bool retryable = true;
  bool canceled = false;
  std::string reason;
  std::string result_json;
};

}  // namespace

int RunJobChild(const std::string& spec_path, const std::string& result_path,
                const std::string& progress_path, const std::string& artifact_root,
                const std::string& data_dir) {
  auto write = [&](const json& j) {
    const std::string tmp = result_path + ".tmp";
    std::ofstream(tmp, std::ios::binary) << j.dump();
    fs::rename(tmp, result_path);
  };
  auto fail = [&](const Status& s) {
    write({{"error", std::string(s.message())}, {"code", static_cast<int>(s.code())}});
    return s.code() == absl::StatusCode::kInvalidArgument || s.code() == absl::StatusCode::kNotFound
               ? 2
               : 1;
  };
  auto spec = JobSpecFromJson(Slurp(spec_path));
  if (!spec.ok()) return fail(spec.status());
  // A job with tp = N runs as N rank processes of this command (model/tp_run.h): this process
  // launches them and reports a failed rank; rank 0 writes the result and the progress.
  auto tp = model::StartTensorParallel(std::max(1, spec->resources.tp));
  if (!tp.ok()) return fail(tp.status());
  if (tp->launched) {
    if (tp->rc != 0) fail(absl::InternalError(tp->failure));
    return tp->rc;
  }
  const bool leader = tp->rank == 0;
  RunnerConfig config{artifact_root, data_dir, tp->tp};
  auto progress = [&](double f, const std::string& phase) {
    if (!leader) return;
    const std::string tmp = progress_path + ".tmp";
    std::ofstream(tmp) << f << "\t" << phase;
    std::error_code ec;
    fs::rename(tmp, progress_path, ec);
  };
  StatusOr<JobOutcome> r = absl::UnknownError("unset");
  try {
    r = RunJob(*spec, config, progress);
  } catch (const std::exception& e) {
    r = absl::InternalError(e.what());
  }
  if (!r.ok()) {
    if (!leader) return 1;  // rank 0 reports; the launcher names this rank if rank 0 cannot
    return fail(r.status());
  }
  if (!leader) return 0;
  json metrics = json::array();
  for (const auto& m : r->metrics) {
    metrics.push_back({{"name", m.name}, {"value", m.value}, {"stderr", m.stderr_}, {"n", m.n}});
  }
  write({{"metrics", metrics}, {"provenance", json::parse(r->provenance_json)}});
  return 0;
}

Status RunWorker(const WorkerOptions& o, const std::atomic<bool>* stop) {
  const std::string name = o.name.empty() ? absl::StrCat("worker-", getpid()) : o.name;
  WorkerMetrics metrics(kWorkerVersion);
  std::unique_ptr<MetricsServer> metrics_server;
  if (!o.metrics_listen.empty()) {
    ASSIGN_OR_RETURN(metrics_server, MetricsServer::Start(o.metrics_listen, metrics.registry()));
    Log(name, absl::StrCat("metrics on http://", o.metrics_listen, "/metrics (port ",
                           metrics_server->port(), ")"));
  }
  Client client(o);
  const std::string self = o.self_exe.empty() ? "/proc/self/exe" : o.self_exe;

  // Register (the coordinator may still be starting: retry UNAVAILABLE for a while). The
  // coordinator keeps registrations in its database, so it knows us after a restart; should it
  // not (its database was reset), Lease answers NOT_FOUND and we register again.
  pb::RegisterRequest reg;
  reg.set_name(name);
  reg.set_devices(o.devices);
  reg.set_memory_gb(o.memory_gb);
  reg.set_max_tp(o.max_tp);
  for (const auto& [key, value] : o.labels) (*reg.mutable_labels())[key] = value;
  auto do_register = [&](pb::RegisterResponse* resp) {
    Status st;
    for (int i = 0; i < 120; ++i) {
      st = client.Do("Register", reg, resp, &pb::WorkerGateway::Stub::Register);
      if (st.code() != absl::StatusCode::kUnavailable || (stop && *stop)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    return st;
  };
  pb::RegisterResponse reg_resp;
  RETURN_IF_ERROR(do_register(&reg_resp));
  int64_t worker_id = reg_resp.worker_id();
  const double ttl = reg_resp.lease_ttl_seconds() > 0 ? reg_resp.lease_ttl_seconds() : 60;
  Log(name, absl::StrCat("registered as worker ", worker_id, " with ", o.coordinator));

  const std::string scratch =
      (fs::temp_directory_path() / absl::StrCat("bitsweep-worker-", getpid())).string();
  fs::create_directories(scratch);
  auto idle_since = Clock::now();
  while (!(stop && *stop)) {
    pb::LeaseRequest lr;
    lr.set_worker_id(worker_id);
    pb::LeaseResponse lease;
    Status ls = client.Do("Lease", lr, &lease, &pb::WorkerGateway::Stub::Lease);
    if (ls.code() == absl::StatusCode::kNotFound) {
      Log(name, "the coordinator does not know this worker (restarted?): registering again");
      if (do_register(&reg_resp).ok()) worker_id = reg_resp.worker_id();
      continue;
    }
    if (!ls.ok() || !lease.has_job()) {
      if (!ls.ok()) Log(name, ls.ToString());
      if (o.idle_exit_seconds > 0 &&
          std::chrono::duration<double>(Clock::now() - idle_since).count() > o.idle_exit_seconds) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::duration<double>(o.poll_seconds));
      continue;
    }
    Log(name, absl::StrCat("leased job ", lease.job_id(), " epoch ", lease.lease_epoch()));
    const std::string spec_path = absl::StrCat(scratch, "/job-", lease.job_id(), ".json");
    const std::string result_path = spec_path + ".result";
    const std::string progress_path = spec_path + ".progress";
    std::ofstream(spec_path, std::ios::binary) << lease.spec_json();
    std::error_code ec;
    fs::remove(result_path, ec);
    fs::remove(progress_path, ec);

    const pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // a worker killed mid-job leaves no stray job process
      const std::string threads = std::to_string(o.threads);
      execl(self.c_str(), "bitsweep-worker", "--threads", threads.c_str(), "run-job", "--spec",
            spec_path.c_str(), "--result", result_path.c_str(), "--progress", progress_path.c_str(),
            "--artifacts", o.artifact_root.c_str(), "--data-dir", o.data_dir.c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    metrics.SetBusy(true);
    const auto job_start = Clock::now();
    auto observe = [&](const std::string& outcome, const std::string& result_json) {
      metrics.ObserveJob(lease.spec_json(), outcome,
                         std::chrono::duration<double>(Clock::now() - job_start).count(),
                         result_json);
    };
    ChildResult cr;
    bool lost = false;
    int status = 0;
    auto last_beat = Clock::now();
    auto kill_deadline = Clock::time_point::max();
    while (true) {
      const pid_t w = waitpid(pid, &status, WNOHANG);
      if (w == pid) break;
      const auto now = Clock::now();
      if (now >= kill_deadline) kill(pid, SIGKILL);
      if (std::chrono::duration<double>(now - last_beat).count() >= ttl / 3 && !lost) {
        last_beat = now;
        pb::HeartbeatRequest hb;
        hb.set_worker_id(worker_id);
        hb.set_job_id(lease.job_id());
        hb.set_lease_epoch(lease.lease_epoch());
        std::istringstream p(Slurp(progress_path));
        double frac = 0;
        std::string phase;
        p >> frac;
        std::getline(p >> std::ws, phase);
        hb.set_progress(frac);
        hb.set_phase(phase);
        pb::HeartbeatResponse hr;
        Status hs = client.Do("Heartbeat", hb, &hr, &pb::WorkerGateway::Stub::Heartbeat);
        const bool fenced = hs.code() == absl::StatusCode::kFailedPrecondition;
        metrics.CountHeartbeat(hs.ok() ? "ok" : fenced ? "fenced" : "error");
        if (fenced || hr.cancel_requested() || (stop && *stop)) {
          Log(name, absl::StrCat("stopping job ", lease.job_id(), ": ",
                                 fenced                  ? "lease lost"
                                 : hr.cancel_requested() ? "canceled"
                                                         : "shutdown"));
          lost = fenced;
          cr.canceled = hr.cancel_requested();
          kill(pid, SIGTERM);
          kill_deadline = now + std::chrono::seconds(5);
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    idle_since = Clock::now();
    metrics.SetBusy(false);
    if (lost) {  // fenced: another attempt owns the job now; discard our work
      observe("lost", "");
      continue;
    }
    const std::string result = Slurp(result_path);
    const json parsed = json::parse(result, nullptr, false);
    const bool valid_result = parsed.is_object() && parsed.contains("metrics") &&
                              parsed["metrics"].is_array() && parsed.contains("provenance");
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && !cr.canceled && valid_result) {
      const json& r = parsed;
      pb::CompleteRequest c;
      c.set_worker_id(worker_id);
      c.set_job_id(lease.job_id());
      c.set_lease_epoch(lease.lease_epoch());
      for (const auto& m : r["metrics"]) {
        pb::Metric* pm = c.add_metrics();
        pm->set_name(m["name"].get<std::string>());
        pm->set_value(m["value"].get<double>());
        pm->set_stderr(m["stderr"].get<double>());
        pm->set_n(m["n"].get<int64_t>());
      }
      json prov = r["provenance"];
      prov["worker"] = name;
      prov["attempt"] = lease.attempt();
      c.set_provenance_json(prov.dump());
      pb::CompleteResponse cresp;
      Status cs;
      for (int i = 0; i < 10; ++i) {  // Complete is idempotent for the same epoch
        cs = client.Do("Complete", c, &cresp, &pb::WorkerGateway::Stub::Complete);
        if (cs.code() != absl::StatusCode::kUnavailable) break;
        std::this_thread::sleep_for(std::chrono::seconds(1));
      }
      observe(cs.ok()                                              ? "succeeded"
              : cs.code() == absl::StatusCode::kFailedPrecondition ? "lost"
                                                                   : "failed",
              result);
      Log(name, absl::StrCat("job ", lease.job_id(),
                             cs.ok() ? " succeeded" : " complete: ", cs.ok() ? "" : cs.ToString()));
      continue;
    }
    pb::FailRequest f;
    f.set_worker_id(worker_id);
    f.set_job_id(lease.job_id());
    f.set_lease_epoch(lease.lease_epoch());
    if (cr.canceled) {
      f.set_reason("canceled");
      f.set_retryable(false);
    } else if (WIFSIGNALED(status)) {
      f.set_reason(absl::StrCat("job process killed by signal ", WTERMSIG(status),
                                WTERMSIG(status) == SIGKILL ? " (out of memory?)" : ""));
      f.set_retryable(true);
    } else {
      const json& r = parsed;
      f.set_reason(r.is_object() && r.contains("error") && r["error"].is_string()
                       ? r["error"].get<std::string>()
                       : absl::StrCat("job process exited with status ", WEXITSTATUS(status),
                                      " without a valid result"));
      f.set_retryable(WEXITSTATUS(status) != 2);
    }
    observe(cr.canceled ? "canceled" : "failed", result);
    pb::FailResponse fresp;
    Status fs_ = client.Do("Fail", f, &fresp, &pb::WorkerGateway::Stub::Fail);
    Log(name, absl::StrCat("job ", lease.job_id(), " failed: ", f.reason(),
                           fs_.ok() ? "" : " (" + fs_.ToString() + ")"));
  }
  fs::remove_all(scratch);
  return absl::OkStatus();
}

}  // namespace bitsweep::worker
