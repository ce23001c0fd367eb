#include "store/internal/sql.h"

#include "absl/strings/str_join.h"

namespace bitsweep::store::internal {

std::string TsOf(const std::string& micros_sql) {
  return "('epoch'::timestamptz + (" + micros_sql + ") * interval '1 microsecond')";
}
std::string Ts(int param) { return TsOf("$" + std::to_string(param) + "::bigint"); }
std::string Us(const std::string& column) {
  return "(extract(epoch from " + column + ") * 1000000)::bigint";
}

std::string TextArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

std::string StateName(JobState s) { return std::string(JobStateName(s)); }
std::string EventName(JobEvent e) { return std::string(JobEventName(e)); }
std::string StateLiteral(JobState s) { return "'" + StateName(s) + "'"; }

StatusOr<JobState> StateOf(const pqxx::field& f) { return ParseJobState(f.as<std::string>()); }

std::string StateList(JobEvent event) {
  std::vector<std::string> literals;
  for (JobState st : SourceStates(event)) literals.push_back(StateLiteral(st));
  return "(" + absl::StrJoin(literals, ", ") + ")";
}

std::string DestinationCase(JobEvent event, const std::string& column) {
  std::string out = "CASE " + column;
  for (JobState from : SourceStates(event)) {
    out += " WHEN " + StateLiteral(from) + " THEN " + StateLiteral(*Apply(from, event));
  }
  return out + " END";
}

StatusOr<JobState> CheckedMove(const std::string& what, const pqxx::row& row, JobEvent event) {
  ASSIGN_OR_RETURN(JobState from, StateOf(row["from_state"]));
  ASSIGN_OR_RETURN(JobState to, StateOf(row["to_state"]));
  StatusOr<JobState> want = Apply(from, event);
  if (!want.ok() || *want != to) {
    return absl::InternalError(what + ": SQL moved a job from " + StateName(from) + " to " +
                               StateName(to) + ", which the transition table does not allow");
  }
  return to;
}

}  // namespace bitsweep::store::internal
