-- bitsweep schema, version 8: early abort of diverged branches (common/early_abort.h).
--
-- jobs.state          adds SKIPPED: a terminal state, a pending job that a sweep's
--                     `early_abort` rule judged useless because its artifact's perplexity
--                     exceeded the rule; last_error holds the reason, naming the numbers and the
--                     rule. A new sweep asking for a SKIPPED job revives it (RESUBMIT).
-- jobs.baseline_key   the job key of the unquantized baseline of the job's model on the job's
--                     task with the same evaluation settings; NULL for a baseline job itself and
--                     for jobs submitted before this migration. The rule compares an artifact's
--                     ppl with its baseline's; an index finds the quantized jobs of a baseline
--                     when the baseline's result arrives after theirs.
-- jobs.saved_seconds  for a SKIPPED job, the worker-seconds it is estimated to have saved: what
--                     its baseline job (the same task on the unquantized model) ran for; 0 when
--                     that is unknown.
-- The rule itself is stored with the sweep, in sweeps.spec ("early_abort").

ALTER TABLE jobs DROP CONSTRAINT IF EXISTS jobs_state_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_state_check CHECK (state IN ('PENDING', 'LEASED',
  'SUCCEEDED', 'FAILED', 'CANCELED', 'CANCEL_REQUESTED', 'SKIPPED'));
ALTER TABLE jobs ADD COLUMN baseline_key text;
ALTER TABLE jobs ADD COLUMN saved_seconds double precision NOT NULL DEFAULT 0;
CREATE INDEX jobs_baseline_key ON jobs (baseline_key) WHERE baseline_key IS NOT NULL;
