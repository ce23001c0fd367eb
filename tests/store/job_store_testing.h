// Helpers shared by the JobStore tests (tests/store/job_store*_test.cc), each against a fresh
// database of the binary's private PostgreSQL. Helpers that REQUIRE fail the calling test.
#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "store/job_store.h"

namespace bitsweep::store::job_store_test {

inline Status ToStatus(const Status& s) { return s; }
template <typename T>
Status ToStatus(const StatusOr<T>& s) {
  return s.status();
}
// REQUIRE that a Status or StatusOr is OK, printing the status when it is not.
#define REQUIRE_OK(expr)                                                              \
  do {                                                                                \
    const ::bitsweep::Status st_ = ::bitsweep::store::job_store_test::ToStatus(expr); \
    INFO(st_.ToString());                                                             \
    REQUIRE(st_.ok());                                                                \
  } while (0)

inline const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);
inline const absl::Duration kTtl = absl::Seconds(30);

// A JobStore over a fresh database.
std::unique_ptr<JobStore> OpenFresh(JobStoreOptions options = {});
// A job keyed `key` on artifact "model-a".
NewJob Job(const std::string& key, int32_t priority = 0);
// Registers a worker at kT0; returns its id.
int64_t Worker(JobStore& store, const std::string& name, Capabilities caps = {},
               std::vector<std::string> artifacts = {});
// Lease() that must hand `worker` a job.
LeasedJob MustLease(JobStore& store, int64_t worker, absl::Time now);
JobState StateOf(JobStore& store, int64_t job_id);

}  // namespace bitsweep::store::job_store_test
