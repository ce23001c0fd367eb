-- bitsweep schema, version 2: the artifacts a worker holds move from workers.artifacts (text[])
-- to a table of their own.
--
-- worker_artifacts  one row per (worker, artifact key) the worker holds: what it reported at
--                   Register and every artifact of a job it completed. seq orders them by when
--                   they were gained (LeaseMany looks at each worker's latest few).
--
-- Why: COMPLETE appended to the array, so every completion rewrote (and TOAST-compressed) a
-- value that grew with every job the worker ran, and every lease read and parsed all of it.
-- A row per artifact makes the append an index insert and the affinity test an index probe.

CREATE TABLE worker_artifacts (
  worker_id     bigint NOT NULL REFERENCES workers (id),
  artifact_key  text NOT NULL CHECK (artifact_key <> ''),
  seq           bigserial,
  PRIMARY KEY (worker_id, artifact_key)
);
CREATE INDEX worker_artifacts_latest ON worker_artifacts (worker_id, seq DESC);

INSERT INTO worker_artifacts (worker_id, artifact_key)
SELECT w.id, a.key FROM workers w CROSS JOIN LATERAL unnest(w.artifacts) WITH ORDINALITY AS a(key, n)
WHERE a.key <> '' ORDER BY w.id, a.n
ON CONFLICT DO NOTHING;

ALTER TABLE workers DROP COLUMN artifacts;
