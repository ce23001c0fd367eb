// The output of each job's process (store/schema/007_job_logs.sql): PutJobLog and GetJobLog.
#include <catch2/catch.hpp>

#include "store/job_store.h"
#include "tests/store/job_store_testing.h"

namespace bitsweep::store::job_store_test {
namespace {

TEST_CASE("a job's stored output is its latest attempt's, never replaced by an older epoch's",
          "[pg]") {
  auto store = OpenFresh();
  NewJob job = Job("logged");
  job.max_attempts = 3;
  REQUIRE_OK(store->SubmitSweep("req-log", "s", "{}", 0, {job}, kT0));
  const int64_t worker = Worker(*store, "w");
  const LeasedJob first = MustLease(*store, worker, kT0);
  auto none = store->GetJobLog(first.job_id);
  REQUIRE_OK(none);
  CHECK_FALSE(none->stored);

  REQUIRE_OK(store->Fail(first.job_id, first.epoch, "boom", /*retryable=*/true, kT0));
  REQUIRE_OK(store->PutJobLog(first.job_id, first.epoch, "attempt one\nboom\n", kT0));
  auto one = store->GetJobLog(first.job_id);
  REQUIRE_OK(one);
  CHECK(one->stored);
  CHECK(one->text == "attempt one\nboom\n");
  CHECK(one->epoch == first.epoch);
  CHECK(one->attempt == 1);
  CHECK(one->stored_at == kT0);

  const absl::Time later = kT0 + absl::Minutes(10);  // past the retry backoff
  const LeasedJob second = MustLease(*store, worker, later);
  REQUIRE_OK(store->Complete(second.job_id, second.epoch, {}, later));
  REQUIRE_OK(store->PutJobLog(second.job_id, second.epoch, "attempt two \xC3\xA9\n", later));
  // A late report of the first attempt does not hide the second's.
  REQUIRE_OK(store->PutJobLog(first.job_id, first.epoch, "late", later));
  auto two = store->GetJobLog(second.job_id);
  REQUIRE_OK(two);
  CHECK(two->text == "attempt two \xC3\xA9\n");
  CHECK(two->epoch == second.epoch);
  CHECK(two->attempt == 2);

  CHECK(store->PutJobLog(first.job_id, second.epoch, std::string("a\0b", 3), later).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(store->PutJobLog(first.job_id, second.epoch, "\xFF", later).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(store->PutJobLog(999999, 1, "x", later).code() == absl::StatusCode::kNotFound);
  CHECK(store->GetJobLog(999999).status().code() == absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace bitsweep::store::job_store_test
