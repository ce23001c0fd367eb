// The verdict of bench/soak, read from the job database once every job is terminal: each
// SUCCEEDED job must hold exactly one result set (its two metrics, written by one Complete),
// written by the worker that held its final lease, in that lease's attempt, with the values of
// its own spec.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace bitsweep::bench {

struct SoakVerdict {
  std::map<std::string, int64_t> states;  // jobs by state
  int64_t jobs = 0;
  int64_t not_terminal = 0;
  // SUCCEEDED jobs without their full result set.
  int64_t lost = 0;
  // SUCCEEDED jobs with more than one result set (rows beyond their metrics, or rows of more
  // than one write), and results of jobs that did not succeed.
  int64_t duplicated = 0;
  // SUCCEEDED jobs whose result was written by a worker or attempt other than the final lease's,
  // or completed under another epoch than that lease's.
  int64_t wrong_writer = 0;
  // Results whose values are not those of their own job's spec.
  int64_t wrong_values = 0;
  std::string failed_example;  // last_error of one FAILED job, if any

  bool ok() const {
    return not_terminal == 0 && lost == 0 && duplicated == 0 && wrong_writer == 0 &&
           wrong_values == 0 && states.count("FAILED") == 0;
  }
};

// Reads the verdict; throws (libpqxx) when the database cannot be read.
SoakVerdict CheckSoak(const std::string& conninfo);

// Proves the checks bite: in a transaction that is rolled back, removes one metric of a job
// (lost), gives a job's results another writer (wrong writer), gives one metric of a job another
// attempt (two writes: duplicated, and wrong writer) and changes a value (wrong values), and
// checks that each count moved. `why` gets what moved. Throws when the database cannot be read.
bool CheckerBites(const std::string& conninfo, std::string* why);

// Jobs not yet terminal (PENDING, LEASED, CANCEL_REQUESTED); -1 when the database cannot be read.
int64_t UnfinishedJobs(const std::string& conninfo);

}  // namespace bitsweep::bench
