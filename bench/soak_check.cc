#include "bench/soak_check.h"

#include <pqxx/pqxx>
#include <string>

#include "common/job_state.h"

namespace bitsweep::bench {

int64_t UnfinishedJobs(const std::string& conninfo) {
  try {
    pqxx::connection c(conninfo);
    pqxx::read_transaction tx(c);
    return tx.exec1("SELECT count(*) FROM jobs WHERE state NOT IN "
                    "('SUCCEEDED', 'FAILED', 'CANCELED')")[0]
        .as<int64_t>();
  } catch (const std::exception&) {
    return -1;
  }
}

namespace {

SoakVerdict Check(pqxx::transaction_base& tx) {
  SoakVerdict v;
  for (const auto& row : tx.exec("SELECT state, count(*) FROM jobs GROUP BY state")) {
    v.states[row[0].as<std::string>()] = row[1].as<int64_t>();
    v.jobs += row[1].as<int64_t>();
  }
  v.not_terminal = tx.exec1("SELECT count(*) FROM jobs WHERE state NOT IN "
                            "('SUCCEEDED', 'FAILED', 'CANCELED')")[0]
                       .as<int64_t>();
  // Each succeeded job's result rows: how many, and how many distinct writes (provenance).
  const std::string per_job =
      "SELECT j.id, count(r.id) AS n, count(DISTINCT r.provenance::text) AS writes "
      "FROM jobs j LEFT JOIN results r ON r.job_id = j.id WHERE j.state = 'SUCCEEDED' "
      "GROUP BY j.id";
  v.lost = tx.exec1("SELECT count(*) FROM (" + per_job + ") p WHERE n < 2")[0].as<int64_t>();
  v.duplicated =
      tx.exec1("SELECT count(*) FROM (" + per_job + ") p WHERE n > 2 OR writes > 1")[0]
          .as<int64_t>() +
      tx.exec1("SELECT count(DISTINCT r.job_id) FROM results r JOIN jobs j ON j.id = r.job_id "
               "WHERE j.state <> 'SUCCEEDED'")[0]
          .as<int64_t>();
  const std::string lease(JobEventName(JobEvent::kLease));
  const std::string complete(JobEventName(JobEvent::kComplete));
  // The final lease and the completion of each succeeded job, against who wrote its results.
  v.wrong_writer =
      tx.exec_params1(
            "WITH fin AS ("
            "  SELECT j.id, j.attempt, j.lease_epoch, "
            "    (SELECT e.worker_id FROM job_events e WHERE e.job_id = j.id AND e.event = $1 "
            "     ORDER BY e.id DESC LIMIT 1) AS lease_worker, "
            "    (SELECT e.epoch FROM job_events e WHERE e.job_id = j.id AND e.event = $1 "
            "     ORDER BY e.id DESC LIMIT 1) AS lease_epoch_event, "
            "    (SELECT e.epoch FROM job_events e WHERE e.job_id = j.id AND e.event = $2 "
            "     ORDER BY e.id DESC LIMIT 1) AS complete_epoch "
            "  FROM jobs j WHERE j.state = 'SUCCEEDED') "
            "SELECT count(DISTINCT fin.id) FROM fin JOIN results r ON r.job_id = fin.id "
            "LEFT JOIN workers w ON w.id = fin.lease_worker "
            "WHERE w.name IS DISTINCT FROM (r.provenance->>'worker') "
            "   OR (r.provenance->>'attempt')::int IS DISTINCT FROM fin.attempt "
            "   OR fin.lease_epoch_event IS DISTINCT FROM fin.lease_epoch "
            "   OR fin.complete_epoch IS DISTINCT FROM fin.lease_epoch",
            lease, complete)[0]
          .as<int64_t>();
  v.wrong_values =
      tx.exec1("SELECT count(*) FROM results r JOIN jobs j ON j.id = r.job_id WHERE "
               "(r.metric = 'soak_wbits' AND r.value <> (j.spec->'quant'->>'wbits')::float8) OR "
               "(r.metric = 'soak_group' AND r.value <> "
               "(j.spec->'quant'->>'group_size')::float8) OR "
               "r.metric NOT IN ('soak_wbits', 'soak_group')")[0]
          .as<int64_t>();
  const auto failed =
      tx.exec("SELECT last_error FROM jobs WHERE state = 'FAILED' ORDER BY id LIMIT 1");
  if (!failed.empty()) v.failed_example = failed[0][0].as<std::string>();
  return v;
}

}  // namespace

SoakVerdict CheckSoak(const std::string& conninfo) {
  pqxx::connection c(conninfo);
  pqxx::read_transaction tx(c);
  return Check(tx);
}

bool CheckerBites(const std::string& conninfo, std::string* why) {
  pqxx::connection c(conninfo);
  pqxx::work tx(c);  // never committed
  const auto jobs = tx.exec(
      "SELECT id FROM jobs WHERE state = 'SUCCEEDED' ORDER BY id LIMIT 4");
  if (jobs.size() < 4) {
    *why = "fewer than 4 succeeded jobs to break";
    return false;
  }
  const auto id = [&](int i) { return jobs[i][0].as<int64_t>(); };
  const SoakVerdict before = Check(tx);
  tx.exec_params("DELETE FROM results WHERE job_id = $1 AND metric = 'soak_group'", id(0));
  tx.exec_params("UPDATE results SET provenance = json_build_object('worker', 'intruder', "
                 "'attempt', provenance->'attempt') WHERE job_id = $1", id(1));
  tx.exec_params("UPDATE results SET provenance = json_build_object('worker', "
                 "provenance->'worker', 'attempt', 99) WHERE job_id = $1 AND metric = "
                 "'soak_wbits'", id(2));
  tx.exec_params("UPDATE results SET value = value + 1 WHERE job_id = $1 AND metric = "
                 "'soak_wbits'", id(3));
  const SoakVerdict after = Check(tx);
  tx.abort();
  const bool bites = after.lost == before.lost + 1 &&
                     after.wrong_writer >= before.wrong_writer + 2 &&
                     after.duplicated == before.duplicated + 1 &&
                     after.wrong_values == before.wrong_values + 1;
  *why = "lost " + std::to_string(after.lost - before.lost) + ", duplicated " +
         std::to_string(after.duplicated - before.duplicated) + ", wrong writer " +
         std::to_string(after.wrong_writer - before.wrong_writer) + ", wrong values " +
         std::to_string(after.wrong_values - before.wrong_values);
  return bites;
}

}  // namespace bitsweep::bench
