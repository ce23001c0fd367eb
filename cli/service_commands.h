// The service side of the `bitsweep` command: its flags and subcommands, dispatched to the gRPC
// client verbs of the coordinator (submit, status, watch, results, cancel: cli/client_commands.h),
// the launchers of the coordinator and worker binaries, and `local`, which runs the whole system
// on one machine (a private PostgreSQL, the coordinator, N workers: cli/local_command.h). What
// they print: cli/output.h.
#pragma once

#include <cstdint>
#include <string>

namespace CLI {
class App;
}

namespace bitsweep::cli {

struct ServiceFlags {
  std::string coordinator = "127.0.0.1:50051";
  std::string token;   // client bearer token (default $BITSWEEP_CLIENT_TOKEN)
  std::string tls_ca;  // CA certificate: TLS to the coordinator
  std::string sweep_file;
  int64_t sweep_id = 0;
  int64_t job_id = 0;
  int64_t compare_id = 0;        // report --compare: a second sweep side by side
  std::string format = "table";  // table | csv | json | markdown | latex | html
  bool percent = false;          // accuracies in percent (table, csv, markdown, latex)
  std::string output;            // results: a file instead of stdout
  std::string status_output;     // status -o: "" (the usual lines), json or wide
  std::string describe_output;   // describe job -o: "" (text) or json
  bool wait = false;
  // local
  int workers = 2;
  std::string state_dir;  // "": DefaultLocalStateDir() (cli/local_command.h)
  bool keep = false;           // serve until Ctrl-C after the sweep (or without one)
  bool local_results = false;  // print the stored results of a stopped state folder
  bool local_status = false;   // print the sweeps and jobs of a stopped state folder
  std::string data_dir;
  int threads_per_worker = 0;
  int devices_per_worker = 0;  // 0: the worker's default; N: --devices N --max-tp N
};

// Registers submit, status, describe, logs, watch, results, report, cancel and local on `app`.
void AddServiceCommands(CLI::App& app, ServiceFlags& flags);
// Runs whichever of them was parsed; -1 when none was.
int RunServiceCommand(CLI::App& app, const ServiceFlags& flags, const std::string& data_dir);

}  // namespace bitsweep::cli
