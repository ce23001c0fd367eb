#include "store/local_postgres.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/process.h"

namespace bitsweep::store {

namespace fs = std::filesystem;

namespace {

constexpr const char* kDefaultBinDir = "/usr/lib/postgresql/15/bin";
constexpr const char* kSuperuser = "bitsweep";
constexpr const char* kServerUser = "postgres";
// Longest unix socket path the kernel accepts is 107 bytes; leave room for "/.s.PGSQL.65535".
constexpr std::size_t kMaxSocketDirLength = 90;

std::string Tail(const std::string& text, std::size_t max_chars = 2000) {
  if (text.size() <= max_chars) return text;
  return "..." + text.substr(text.size() - max_chars);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string FindBinDir() {
  // pg_config of libpq-dev reports the server's bindir on Debian.
  if (FILE* p = popen("pg_config --bindir 2>/dev/null", "r")) {
    char buf[512];
    std::string out;
    while (fgets(buf, sizeof(buf), p) != nullptr) out += buf;
    pclose(p);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    if (!out.empty() && fs::exists(fs::path(out) / "initdb")) return out;
  }
  return kDefaultBinDir;
}

Status ChownTree(const fs::path& root, uid_t uid, gid_t gid) {
  std::error_code ec;
  if (chown(root.c_str(), uid, gid) != 0) {
    return absl::PermissionDeniedError("chown " + root.string() + ": " + std::strerror(errno));
  }
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (lchown(it->path().c_str(), uid, gid) != 0) {
      return absl::PermissionDeniedError("chown " + it->path().string() + ": " +
                                         std::strerror(errno));
    }
  }
  if (ec) return absl::InternalError("walking " + root.string() + ": " + ec.message());
  return absl::OkStatus();
}

}  // namespace

Status LocalPostgresOptions::Validate() const {
  if (data_dir.empty()) return absl::InvalidArgumentError("LocalPostgresOptions.data_dir is empty");
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError("LocalPostgresOptions.port out of range: " +
                                      std::to_string(port));
  }
  if (max_connections < 2) {
    return absl::InvalidArgumentError("LocalPostgresOptions.max_connections must be >= 2");
  }
  if (timeout_s <= 0) return absl::InvalidArgumentError("LocalPostgresOptions.timeout_s <= 0");
  return absl::OkStatus();
}

StatusOr<std::unique_ptr<LocalPostgres>> LocalPostgres::Start(const LocalPostgresOptions& options) {
  RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<LocalPostgres> pg(new LocalPostgres(options));
  std::error_code ec;
  pg->options_.data_dir = fs::absolute(options.data_dir, ec).lexically_normal().string();
  while (pg->options_.data_dir.size() > 1 && pg->options_.data_dir.back() == '/') {
    pg->options_.data_dir.pop_back();
  }
  if (pg->options_.bin_dir.empty()) pg->options_.bin_dir = FindBinDir();
  if (!fs::exists(pg->Bin("initdb")) || !fs::exists(pg->Bin("pg_ctl"))) {
    return absl::FailedPreconditionError("PostgreSQL server binaries not found in " +
                                         pg->options_.bin_dir +
                                         " (install postgresql-15 or set bin_dir)");
  }
  pg->as_postgres_user_ = geteuid() == 0;
  RETURN_IF_ERROR(pg->InitDb());
  pg->port_ = options.port;
  if (pg->port_ == 0) {
    // A port probed free can be taken before postgres binds it; try a few.
    Status last;
    for (int attempt = 0; attempt < 5; ++attempt) {
      pg->port_ = FreePort();
      if (pg->port_ == 0) return absl::UnavailableError("cannot find a free port on 127.0.0.1");
      last = pg->StartServer();
      if (last.ok()) return pg;
    }
    return last;
  }
  RETURN_IF_ERROR(pg->StartServer());
  return pg;
}

LocalPostgres::~LocalPostgres() {
  if (running_) Stop().IgnoreError();
  if (guardian_fd_ >= 0) {
    close(guardian_fd_);  // the guardian's pg_ctl stop finds the server stopped
    while (waitpid(guardian_pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

pid_t LocalPostgres::pid() const {
  if (!running_) return 0;
  std::istringstream in(ReadFile((fs::path(options_.data_dir) / "postmaster.pid").string()));
  long pid = 0;
  in >> pid;
  return static_cast<pid_t>(pid);
}

Status LocalPostgres::StartGuardian() {
  if (!options_.stop_with_owner || guardian_fd_ >= 0) return absl::OkStatus();
  // Everything the child needs is made before fork: it may only make async-signal-safe calls.
  const std::vector<std::string> argv = {Bin("pg_ctl"), "stop", "-D", options_.data_dir, "-m",
                                         "fast", "-w", "-t", std::to_string(options_.timeout_s)};
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  passwd* pw = as_postgres_user_ ? getpwnam(kServerUser) : nullptr;
  const uid_t uid = pw != nullptr ? pw->pw_uid : 0;
  const gid_t gid = pw != nullptr ? pw->pw_gid : 0;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(std::string("pipe: ") + std::strerror(errno));
  }
  const int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  const pid_t pid = fork();
  if (pid == 0) {
    setsid();  // no terminal signals: Ctrl-C must not end the guardian before the server
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE}) signal(sig, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, nullptr);
    for (int fd : {0, 1, 2}) dup2(null_fd, fd);
    for (int fd = 3; fd < 1024; ++fd) {
      if (fd != fds[0]) close(fd);
    }
    char byte;
    while (true) {  // until the owner's end closes (EOF), however the owner ended
      const ssize_t n = read(fds[0], &byte, 1);
      if (n == 0 || (n < 0 && errno != EINTR)) break;
    }
    if (pw != nullptr && (setgroups(0, nullptr) != 0 || setgid(gid) != 0 || setuid(uid) != 0)) {
      _exit(126);
    }
    execv(args[0], args.data());
    _exit(127);
  }
  const int fork_errno = errno;
  close(fds[0]);
  if (null_fd >= 0) close(null_fd);
  if (pid < 0) {
    close(fds[1]);
    return absl::InternalError(std::string("fork: ") + std::strerror(fork_errno));
  }
  guardian_fd_ = fds[1];
  guardian_pid_ = pid;
  return absl::OkStatus();
}

std::string LocalPostgres::Bin(const std::string& name) const {
  return (fs::path(options_.bin_dir) / name).string();
}

std::string LocalPostgres::ConnInfo(const std::string& dbname) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=" + kSuperuser +
         " dbname=" + dbname + " connect_timeout=5";
}

Status LocalPostgres::Run(const std::string& what, const std::vector<std::string>& argv,
                          bool as_server_user) {
  char log_template[] = "/tmp/bitsweep-pg-XXXXXX";
  int log_fd = mkstemp(log_template);
  if (log_fd < 0) return absl::InternalError(std::string("mkstemp: ") + std::strerror(errno));
  const std::string log_path = log_template;

  uid_t uid = 0;
  gid_t gid = 0;
  const bool drop = as_server_user && as_postgres_user_;
  if (drop) {
    passwd* pw = getpwnam(kServerUser);
    if (pw == nullptr) {
      close(log_fd);
      unlink(log_path.c_str());
      return absl::FailedPreconditionError(
          "running as root, but there is no 'postgres' system user to run " + what + " as");
    }
    uid = pw->pw_uid;
    gid = pw->pw_gid;
  }
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  pid_t pid = fork();
  if (pid < 0) {
    close(log_fd);
    unlink(log_path.c_str());
    return absl::InternalError(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // Child: output to the log, no inherited descriptors (a server started by pg_ctl must not
    // keep the parent's sockets open), then drop root if needed.
    int null_fd = open("/dev/null", O_RDONLY);
    dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    for (int fd = 3; fd < 1024; ++fd) close(fd);
    if (drop && (setgroups(0, nullptr) != 0 || setgid(gid) != 0 || setuid(uid) != 0)) {
      std::fprintf(stderr, "cannot switch to user postgres: %s\n", std::strerror(errno));
      _exit(126);
    }
    execv(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  close(log_fd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  const std::string output = ReadFile(log_path);
  unlink(log_path.c_str());
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  std::string how = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                      : "signal " + std::to_string(WTERMSIG(status));
  return absl::UnavailableError(what + " failed (" + how + ", data dir " + options_.data_dir +
                                "): " + Tail(output));
}

Status LocalPostgres::InitDb() {
  const fs::path dir(options_.data_dir);
  std::error_code ec;
  if (fs::exists(dir / "PG_VERSION")) {
    // A server left running by a crashed owner would hold the port and the data directory.
    if (fs::exists(dir / "postmaster.pid")) {
      Run("pg_ctl stop (stale server)",
          {Bin("pg_ctl"), "stop", "-D", options_.data_dir, "-m", "immediate", "-w"}, true)
          .IgnoreError();
    }
    return absl::OkStatus();
  }
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError("cannot create " + dir.string() + ": " + ec.message());
  if (!fs::is_empty(dir)) {
    return absl::FailedPreconditionError("data dir " + dir.string() +
                                         " is neither empty nor a PostgreSQL cluster");
  }
  if (as_postgres_user_) {
    passwd* pw = getpwnam(kServerUser);
    if (pw == nullptr) {
      return absl::FailedPreconditionError(
          "running as root, but there is no 'postgres' system user for initdb");
    }
    RETURN_IF_ERROR(ChownTree(dir, pw->pw_uid, pw->pw_gid));
  }
  chmod(dir.c_str(), 0700);
  std::vector<std::string> argv = {
      Bin("initdb"),     "-D",          options_.data_dir,  "-U", kSuperuser, "--auth=trust",
      "--encoding=UTF8", "--no-locale", "--no-instructions"};
  if (!options_.fsync) argv.push_back("--no-sync");
  RETURN_IF_ERROR(Run("initdb", argv, true));
  return absl::OkStatus();
}

Status LocalPostgres::StartServer() {
  const fs::path dir(options_.data_dir);
  if (ReadFile((dir / "postgresql.conf").string()).find("'bitsweep.conf'") == std::string::npos) {
    std::ofstream conf(dir / "postgresql.conf", std::ios::app);
    conf << "\n# bitsweep LocalPostgres: settings rewritten at every start\n"
         << "include_if_exists = 'bitsweep.conf'\n";
    if (!conf) {
      return absl::InternalError("cannot append to " + (dir / "postgresql.conf").string());
    }
  }
  {
    std::ofstream conf(dir / "bitsweep.conf", std::ios::trunc);
    conf << "listen_addresses = '127.0.0.1'\n"
         << "port = " << port_ << "\n"
         << "unix_socket_directories = '"
         << (options_.data_dir.size() <= kMaxSocketDirLength ? options_.data_dir : "") << "'\n"
         << "max_connections = " << options_.max_connections << "\n"
         << "shared_buffers = '128MB'\n"
         << "log_min_messages = warning\n";
    if (!options_.fsync) {
      conf << "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n";
    }
    if (options_.read_only) conf << "default_transaction_read_only = on\n";
    if (!conf) return absl::InternalError("cannot write " + (dir / "bitsweep.conf").string());
  }
  if (as_postgres_user_) {
    passwd* pw = getpwnam(kServerUser);
    if (pw != nullptr) chown((dir / "bitsweep.conf").c_str(), pw->pw_uid, pw->pw_gid);
  }
  Status st = Run("pg_ctl start on port " + std::to_string(port_),
                  {Bin("pg_ctl"), "start", "-D", options_.data_dir, "-l",
                   (dir / "postgres.log").string(), "-w", "-t", std::to_string(options_.timeout_s)},
                  true);
  if (!st.ok()) {
    return absl::Status(st.code(), std::string(st.message()) + "\nserver log tail: " +
                                       Tail(ReadFile((dir / "postgres.log").string())));
  }
  // pg_ctl -w waits for the postmaster's "ready" status; confirm over TCP as clients will.
  st = Run("pg_isready",
           {Bin("pg_isready"), "-h", "127.0.0.1", "-p", std::to_string(port_), "-t",
            std::to_string(options_.timeout_s)},
           false);
  running_ = true;
  RETURN_IF_ERROR(st);
  return StartGuardian();
}

Status LocalPostgres::Stop() {
  if (!running_) return absl::OkStatus();
  RETURN_IF_ERROR(Run("pg_ctl stop",
                      {Bin("pg_ctl"), "stop", "-D", options_.data_dir, "-m", "fast", "-w", "-t",
                       std::to_string(options_.timeout_s)},
                      true));
  running_ = false;
  return absl::OkStatus();
}

Status LocalPostgres::StartAgain() {
  if (running_) return absl::OkStatus();
  return StartServer();
}

Status LocalPostgres::Restart() {
  RETURN_IF_ERROR(Stop());
  return StartAgain();
}

StatusOr<std::string> LocalPostgres::CreateDatabase(const std::string& name) {
  if (!running_) return absl::FailedPreconditionError("CreateDatabase: server is not running");
  RETURN_IF_ERROR(
      Run("createdb " + name,
          {Bin("createdb"), "-h", "127.0.0.1", "-p", std::to_string(port_), "-U", kSuperuser, name},
          false));
  return ConnInfo(name);
}

}  // namespace bitsweep::store
