#include "worker/result_spool.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace bitsweep::worker {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kSpoolFormat = 1;

Status Errno(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat("result spool: ", what, " '", path, "': ",
                                          std::strerror(errno)));
}

// write(2) all of `text`, then fsync.
Status WriteDurably(int fd, const std::string& text, const std::string& path) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("write", path);
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) return Errno("fsync", path);
  return absl::OkStatus();
}

Status SyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("open", dir);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Errno("fsync", dir);
  return absl::OkStatus();
}

std::optional<SpooledResult> Parse(const std::string& text, const std::string& path) {
  const json j = json::parse(text, nullptr, false);
  if (!j.is_object() || j.value("format", 0) != kSpoolFormat) return std::nullopt;
  try {
    SpooledResult r;
    r.lease.worker_id = j.at("worker_id").get<int64_t>();
    r.lease.job_id = j.at("job_id").get<int64_t>();
    r.lease.lease_epoch = j.at("lease_epoch").get<int64_t>();
    r.lease.attempt = j.at("attempt").get<int32_t>();
    r.lease.spec_json = j.at("spec_json").get<std::string>();
    r.lease.session = j.value("session", std::string());
    for (const json& m : j.at("metrics")) {
      r.metrics.push_back({m.at("name").get<std::string>(), m.at("value").get<double>(),
                           m.at("stderr").get<double>(), m.at("n").get<int64_t>()});
    }
    r.provenance_json = j.at("provenance_json").get<std::string>();
    r.cluster_id = j.value("cluster_id", std::string());
    r.log_tail = j.value("log_tail", std::string());  // absent in older spools
    r.path = path;
    return r;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

}  // namespace

StatusOr<std::unique_ptr<ResultSpool>> ResultSpool::Open(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("result spool: cannot create '", dir, "': ", ec.message()));
  }
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  const std::string lock_path = dir + "/.lock";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("open", lock_path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return absl::FailedPreconditionError(absl::StrCat(
        "result spool '", dir, "' is in use by another worker: give each worker its own "
        "--state-dir"));
  }
  return std::unique_ptr<ResultSpool>(new ResultSpool(dir, fd));
}

ResultSpool::~ResultSpool() { ::close(lock_fd_); }  // releases the flock

StatusOr<SpooledResult> ResultSpool::Put(const JobLease& lease,
                                         const std::vector<MetricRow>& metrics,
                                         const std::string& provenance_json,
                                         const std::string& cluster_id,
                                         const std::string& log_tail) {
  json rows = json::array();
  for (const MetricRow& m : metrics) {
    rows.push_back({{"name", m.name}, {"value", m.value}, {"stderr", m.stderr_}, {"n", m.n}});
  }
  const json j = {{"format", kSpoolFormat},
                  {"worker_id", lease.worker_id},
                  {"job_id", lease.job_id},
                  {"lease_epoch", lease.lease_epoch},
                  {"attempt", lease.attempt},
                  {"spec_json", lease.spec_json},
                  {"session", lease.session},
                  {"metrics", rows},
                  {"provenance_json", provenance_json},
                  {"cluster_id", cluster_id},
                  {"log_tail", log_tail}};
  SpooledResult r{lease, metrics, provenance_json, cluster_id,
                  absl::StrCat(dir_, "/job-", lease.job_id, "-epoch-", lease.lease_epoch, ".json"),
                  log_tail};
  const std::string tmp = r.path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("open", tmp);
  Status written = WriteDurably(fd, j.dump(), tmp);
  ::close(fd);
  if (written.ok() && ::rename(tmp.c_str(), r.path.c_str()) != 0) written = Errno("rename", tmp);
  if (written.ok()) written = SyncDirectory(dir_);
  if (!written.ok()) {
    ::unlink(tmp.c_str());
    return written;
  }
  return r;
}

std::vector<SpooledResult> ResultSpool::List(std::vector<std::string>* unreadable) const {
  std::vector<SpooledResult> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (!absl::StartsWith(name, "job-") || !absl::EndsWith(name, ".json")) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string text(std::istreambuf_iterator<char>(in), {});
    std::optional<SpooledResult> r = Parse(text, entry.path().string());
    if (r.has_value()) {
      out.push_back(*std::move(r));
      continue;
    }
    std::error_code ignored;
    fs::rename(entry.path(), entry.path().string() + ".corrupt", ignored);
    if (unreadable != nullptr) unreadable->push_back(entry.path().string());
  }
  std::sort(out.begin(), out.end(), [](const SpooledResult& a, const SpooledResult& b) {
    return a.lease.job_id < b.lease.job_id;
  });
  return out;
}

Status ResultSpool::Remove(const SpooledResult& result) {
  if (::unlink(result.path.c_str()) != 0 && errno != ENOENT) return Errno("unlink", result.path);
  return SyncDirectory(dir_);
}

}  // namespace bitsweep::worker
