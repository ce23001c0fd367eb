#include "store/internal/lease_ranking.h"

#include <iterator>

#include "store/internal/sql.h"

namespace bitsweep::store::internal {

namespace {

// One term of the ranking: its SQL expression (see LeaseOrderBySql) and the same value in C++.
struct RankTerm {
  const char* sql;
  bool descending;
  int64_t (*value)(const RankFacts&);
};

// THE lease ranking, most significant term first. Both lease paths derive theirs from it, so a
// term added or reordered here changes both: LeaseMany's answers must stay those of
// consecutive Lease calls (tests/store checks this on random worlds).
const RankTerm kLeaseRanking[] = {
    {"j.priority", true, [](const RankFacts& f) -> int64_t { return f.priority; }},
    // worker_artifacts never holds an empty key (CHECK), as holds_artifact never is for one.
    {"EXISTS (SELECT 1 FROM worker_artifacts a WHERE a.worker_id = $2 "
     "AND a.artifact_key = j.artifact_key)",
     true, [](const RankFacts& f) -> int64_t { return f.holds_artifact ? 1 : 0; }},
    {"coalesce(h.n, 0)", false, [](const RankFacts& f) { return f.sweep_held; }},
    {"j.id", false, [](const RankFacts& f) { return f.job_id; }},
};

}  // namespace

std::string CandidateWindowSql(const std::string& where, const std::string& limit,
                               const std::string& now_sql) {
  return "(SELECT c.id FROM jobs c WHERE " + where + " AND c.state IN " +
         StateList(JobEvent::kLease) + " AND c.not_before <= " + now_sql +
         " AND c.devices <= w.devices AND c.memory_gb <= w.memory_gb AND c.tp <= w.tp"
         " ORDER BY c.priority DESC, c.id LIMIT " +
         limit + ")";
}

std::string HeldPerSweepSql() {
  return "SELECT sweep_id, count(*) AS n FROM jobs WHERE state IN " +
         StateList(JobEvent::kHeartbeat) + " GROUP BY sweep_id";
}

bool Fits(const Candidate& job, const Capabilities& offer, absl::Time now) {
  return job.not_before <= now && job.needs.devices <= offer.devices &&
         job.needs.memory_gb <= offer.memory_gb && job.needs.tp <= offer.tp;
}

bool RanksBefore(const RankFacts& a, const RankFacts& b) {
  for (const RankTerm& term : kLeaseRanking) {
    const int64_t x = term.value(a), y = term.value(b);
    if (x != y) return term.descending ? x > y : x < y;
  }
  return false;
}

std::string LeaseOrderBySql() {
  std::string out;
  for (const RankTerm& term : kLeaseRanking) {
    if (!out.empty()) out += ", ";
    out += term.sql;
    if (term.descending) out += " DESC";
  }
  return out;
}

}  // namespace bitsweep::store::internal
