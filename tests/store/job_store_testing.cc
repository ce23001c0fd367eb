#include "tests/store/job_store_testing.h"

#include <utility>

#include "tests/testing/local_pg.h"

namespace bitsweep::store::job_store_test {

std::unique_ptr<JobStore> OpenFresh(JobStoreOptions options) {
  auto store = JobStore::Open(testing::FreshDatabase(), options);
  if (!store.ok()) FAIL("JobStore::Open: " << store.status().ToString());
  return std::move(store).value();
}

NewJob Job(const std::string& key, int32_t priority) {
  NewJob j;
  j.job_key = key;
  j.artifact_key = "model-a";
  j.spec_json = R"({"key": ")" + key + R"("})";
  j.priority = priority;
  return j;
}

int64_t Worker(JobStore& store, const std::string& name, Capabilities caps,
               std::vector<std::string> artifacts) {
  WorkerInfo w;
  w.name = name;
  w.capabilities = caps;
  w.artifacts = std::move(artifacts);
  auto id = store.RegisterWorker(w, kT0);
  REQUIRE_OK(id);
  return *id;
}

LeasedJob MustLease(JobStore& store, int64_t worker, absl::Time now) {
  auto l = store.Lease(worker, now, kTtl);
  INFO(l.status().ToString());
  REQUIRE_OK(l);
  REQUIRE(l->has_value());
  return **l;
}

JobState StateOf(JobStore& store, int64_t job_id) {
  auto j = store.GetJob(job_id);
  REQUIRE_OK(j);
  return j->state;
}

}  // namespace bitsweep::store::job_store_test
