// SQL helpers of the store: prepared execution, array parameters, times, and SQL text generated
// from the transition table. Private to store/ (the only folder that includes <pqxx/...>).
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <pqxx/pqxx>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "common/job_state.h"
#include "common/status.h"

namespace bitsweep::store::internal {

// Times cross the wire as int64 microseconds since the epoch: exact both ways.
// TsOf("a.now"): the timestamptz of an SQL bigint expression of microseconds.
std::string TsOf(const std::string& micros_sql);
// Ts(3): the timestamptz of parameter $3 (microseconds).
std::string Ts(int param);
// Us("j.not_before"): a timestamptz column as bigint microseconds.
std::string Us(const std::string& column);
inline int64_t Micros(absl::Time t) { return absl::ToUnixMicros(t); }
inline absl::Time FromMicros(int64_t us) { return absl::FromUnixMicros(us); }

// PostgreSQL array literals for unnest(): the whole batch is one parameter per column.
std::string TextArray(const std::vector<std::string>& values);
template <typename T>
std::string NumberArray(const std::vector<T>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    if constexpr (std::is_floating_point_v<T>) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%.17g", static_cast<double>(values[i]));
      out += buf;
    } else {
      out += std::to_string(values[i]);
    }
  }
  return out + "}";
}

// Runs `sql` as a prepared statement named after its hash: PostgreSQL plans each distinct
// statement once per connection instead of on every call (planning the lease query costs more
// than running it). pqxx registers an identical definition once and prepares it lazily.
template <typename... Args>
pqxx::result Exec(pqxx::transaction_base& tx, const std::string& sql, Args&&... args) {
  char name[32];
  std::snprintf(name, sizeof(name), "bitsweep_%016zx", std::hash<std::string>{}(sql));
  tx.conn().prepare(name, sql);
#if PQXX_VERSION_MAJOR > 7 || (PQXX_VERSION_MAJOR == 7 && PQXX_VERSION_MINOR >= 10)
  // libpqxx 7.10 (Debian 13) deprecates exec_prepared for this form; 6.4 (Debian 12) lacks it.
  return tx.exec(pqxx::prepped{name}, pqxx::params{std::forward<Args>(args)...});
#else
  return tx.exec_prepared(name, std::forward<Args>(args)...);
#endif
}
// Exec that expects exactly one row (pqxx::unexpected_rows otherwise).
template <typename... Args>
pqxx::row Exec1(pqxx::transaction_base& tx, const std::string& sql, Args&&... args) {
  pqxx::result r = Exec(tx, sql, std::forward<Args>(args)...);
  if (r.size() != 1) {
    throw pqxx::unexpected_rows("expected one row, got " + std::to_string(r.size()));
  }
  return r[0];
}

std::string StateName(JobState s);
std::string EventName(JobEvent e);
// `'PENDING'`: a state as an SQL string literal.
std::string StateLiteral(JobState s);
StatusOr<JobState> StateOf(const pqxx::field& f);

// `('PENDING')`: an event's source states as an SQL list literal. Only for the lease queries,
// whose partial indexes PostgreSQL matches against literal states, never against parameters;
// the text comes from the transition table, never from a caller.
std::string StateList(JobEvent event);
// `CASE col WHEN 'PENDING' THEN 'LEASED' END`: where `event` takes each source, per the table.
std::string DestinationCase(JobEvent event, const std::string& column);

// The states an SQL statement reports it moved a job between (columns from_state and to_state of
// `row`), checked against the transition table (the statements encode the table in SQL; this
// keeps the two from drifting apart). Returns the destination.
StatusOr<JobState> CheckedMove(const std::string& what, const pqxx::row& row, JobEvent event);

}  // namespace bitsweep::store::internal
