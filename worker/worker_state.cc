#include "worker/worker_state.h"

#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <functional>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace bitsweep::worker {
namespace {

namespace fs = std::filesystem;

// Default state directories tried for a worker without a name: more workers than this on one
// host serving one coordinator need --state-dir.
constexpr int kMaxDefaultStateDirs = 64;

std::string RandomHex(int digits) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string out;
  while (static_cast<int>(out.size()) < digits) {
    char chunk[17];
    std::snprintf(chunk, sizeof(chunk), "%016llx", static_cast<unsigned long long>(rng()));
    out += chunk;
  }
  return out.substr(0, static_cast<std::size_t>(digits));
}

std::string SafeLeaf(std::string leaf) {
  for (char& c : leaf) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.' &&
        c != '@') {
      c = '_';
    }
  }
  return leaf;
}

std::string DefaultDir(const std::string& who, const std::string& coordinator) {
  return (fs::path(StateHome()) / "bitsweep" / "worker" /
          SafeLeaf(absl::StrCat(who, "@", coordinator)))
      .string();
}

// The file's first line, or "" when it does not exist.
std::string ReadLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return std::string(absl::StripAsciiWhitespace(line));
}

// Reads `<dir>/<file>`, or writes `make()` there first (whole, then renamed into place).
StatusOr<std::string> Kept(const std::string& dir, const std::string& file,
                           const std::function<std::string()>& make) {
  const std::string path = dir + "/" + file;
  std::string value = ReadLine(path);
  if (!value.empty()) return value;
  value = make();
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << value << "\n";
    if (!out) return absl::InternalError(absl::StrCat("worker state: cannot write '", tmp, "'"));
  }
  std::error_code ec;
  fs::permissions(tmp, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace,
                  ec);
  fs::rename(tmp, path, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("worker state: cannot write '", path, "': ", ec.message()));
  }
  return value;
}

}  // namespace

std::string StateHome() {
  // The XDG base directory rules: a relative value is invalid and ignored.
  const char* xdg = std::getenv("XDG_STATE_HOME");
  if (xdg != nullptr && xdg[0] == '/') return xdg;
  const char* home = std::getenv("HOME");
  if (home != nullptr && home[0] == '/') return (fs::path(home) / ".local" / "state").string();
  return (fs::temp_directory_path() / absl::StrCat("bitsweep-state-", getuid())).string();
}

std::string HostName() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') return "host";
  return host;
}

StatusOr<WorkerState> OpenWorkerState(const std::string& state_dir, const std::string& name,
                                      const std::string& coordinator) {
  WorkerState state;
  if (!state_dir.empty() || !name.empty()) {
    state.dir = state_dir.empty() ? DefaultDir(name, coordinator) : state_dir;
    ASSIGN_OR_RETURN(state.spool, ResultSpool::Open(state.dir + "/spool"));
  } else {
    const std::string base = DefaultDir(HostName(), coordinator);
    for (int k = 0; k < kMaxDefaultStateDirs && state.spool == nullptr; ++k) {
      const std::string dir = absl::StrCat(base, "-", k);
      StatusOr<std::unique_ptr<ResultSpool>> spool = ResultSpool::Open(dir + "/spool");
      if (spool.ok()) {
        state.dir = dir;
        state.spool = *std::move(spool);
      } else if (spool.status().code() != absl::StatusCode::kFailedPrecondition) {
        return spool.status();
      }
    }
    if (state.spool == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          kMaxDefaultStateDirs, " workers of this host already serve ", coordinator,
          ": give this one a --state-dir"));
    }
  }
  if (!name.empty()) {
    state.name = name;
  } else {
    ASSIGN_OR_RETURN(state.name, Kept(state.dir, "name", [] {
                       return absl::StrCat(HostName(), "-", RandomHex(6));
                     }));
  }
  ASSIGN_OR_RETURN(state.session, Kept(state.dir, "session", [] { return RandomHex(32); }));
  return state;
}

}  // namespace bitsweep::worker
