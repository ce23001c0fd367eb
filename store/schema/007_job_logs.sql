-- bitsweep schema, version 7: the output of each job's process.
--
-- job_logs  one row per job: the end of the output (standard output and error, at most the last
--           64 KiB, valid UTF-8) of its latest attempt whose worker reported one with Complete or
--           Fail; `bitsweep logs JOB` (GetJobLog) reads it. epoch and attempt say which attempt
--           wrote it; a later attempt's output replaces it.

CREATE TABLE job_logs (
  job_id     bigint PRIMARY KEY REFERENCES jobs (id),
  epoch      bigint NOT NULL,
  attempt    integer NOT NULL,
  text       text NOT NULL,
  stored_at  timestamptz NOT NULL
);
