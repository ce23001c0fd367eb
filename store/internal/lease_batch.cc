#include "store/internal/lease_batch.h"

#include <algorithm>

#include "store/internal/lease_sql.h"
#include "store/internal/sql.h"

namespace bitsweep::store::internal {

LeaseSnapshot ReadLeaseSnapshot(pqxx::transaction_base& tx, absl::Time latest,
                                const std::vector<int64_t>& worker_ids) {
  const int64_t extra = static_cast<int64_t>(worker_ids.size());
  LeaseSnapshot s;
  for (const pqxx::row& r :
       Exec(tx, LeaseSnapshotQuery(), Micros(latest), NumberArray(worker_ids), kLeaseWindow + extra,
            kAffinityWindow + extra, kBatchAffinityArtifacts)) {
    switch (r["kind"].as<int>()) {
      case kWorkerRow: {
        Capabilities& w = s.workers[r["id"].as<int64_t>()];
        w.devices = r["devices"].as<int32_t>();
        w.memory_gb = r["memory_gb"].as<double>();
        w.tp = r["tp"].as<int32_t>();
        // A worker row carries its session in the artifact_key column.
        s.session_of[r["id"].as<int64_t>()] = r["artifact_key"].as<std::string>();
        break;
      }
      case kWorkerArtifactRow:
        s.artifacts_of[r["id"].as<int64_t>()].insert(r["artifact_key"].as<std::string>());
        break;
      case kCandidateRow: {
        Candidate c;
        c.id = r["id"].as<int64_t>();
        c.sweep_id = r["sweep_id"].as<int64_t>();
        c.priority = r["priority"].as<int32_t>();
        c.artifact_key = r["artifact_key"].as<std::string>();
        c.needs.devices = r["devices"].as<int32_t>();
        c.needs.memory_gb = r["memory_gb"].as<double>();
        c.needs.tp = r["tp"].as<int32_t>();
        c.not_before = FromMicros(r["not_before_us"].as<int64_t>());
        s.candidates.push_back(std::move(c));
        break;
      }
      case kHeldRow:
        s.held[r["sweep_id"].as<int64_t>()] = r["held"].as<int64_t>();
        break;
    }
  }
  return s;
}

std::vector<LeasePick> PickRound(const LeaseSnapshot& snapshot,
                                 const std::vector<LeaseRequest>& requests,
                                 const std::vector<bool>& open,
                                 const std::vector<const Candidate*>& leased,
                                 const std::set<int64_t>& gone) {
  std::set<int64_t> taken;
  std::map<int64_t, int64_t> held = snapshot.held;
  for (const Candidate* c : leased) {
    if (c == nullptr) continue;
    taken.insert(c->id);
    ++held[c->sweep_id];
  }
  static const std::set<std::string> kNoArtifacts;
  std::vector<LeasePick> picks;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    if (!open[i]) continue;
    const LeaseRequest& q = requests[i];
    const Capabilities& w = snapshot.workers.at(q.worker_id);
    auto arts = snapshot.artifacts_of.find(q.worker_id);
    const std::set<std::string>& w_artifacts =
        arts == snapshot.artifacts_of.end() ? kNoArtifacts : arts->second;
    const Candidate* best = nullptr;
    RankFacts best_facts;
    for (const Candidate& c : snapshot.candidates) {
      if (taken.count(c.id) || gone.count(c.id) || !Fits(c, w, q.now)) continue;
      auto h = held.find(c.sweep_id);
      const RankFacts facts{c.priority,
                            !c.artifact_key.empty() && w_artifacts.count(c.artifact_key) > 0,
                            h == held.end() ? 0 : h->second, c.id};
      if (best == nullptr || RanksBefore(facts, best_facts)) {
        best = &c;
        best_facts = facts;
      }
    }
    if (best == nullptr) continue;
    taken.insert(best->id);
    ++held[best->sweep_id];
    picks.push_back({i, best});
  }
  return picks;
}

void Liveness::Saw(int64_t worker_id, absl::Time now) {
  // A worker asking twice is alive as of its later call, as consecutive Leases leave it.
  auto seen = std::find(workers.begin(), workers.end(), worker_id);
  if (seen == workers.end()) {
    workers.push_back(worker_id);
    nows.push_back(Micros(now));
  } else {
    nows[static_cast<std::size_t>(seen - workers.begin())] = Micros(now);
  }
}

pqxx::result ApplyLeases(pqxx::transaction_base& tx, const std::vector<LeaseRequest>& requests,
                         const std::vector<LeasePick>& picks, const Liveness& live) {
  std::vector<int64_t> job_ids, worker_ids, deadlines, nows;
  std::vector<std::string> request_ids;
  for (const LeasePick& p : picks) {
    const LeaseRequest& q = requests[p.request];
    request_ids.push_back(q.request_id);
    job_ids.push_back(p.job->id);
    worker_ids.push_back(q.worker_id);
    deadlines.push_back(Micros(q.now + q.ttl));
    nows.push_back(Micros(q.now));
  }
  return Exec(tx, LeaseApplyQuery(), NumberArray(job_ids), NumberArray(worker_ids),
              NumberArray(deadlines), NumberArray(nows), NumberArray(live.workers),
              NumberArray(live.nows), TextArray(request_ids));
}

}  // namespace bitsweep::store::internal
