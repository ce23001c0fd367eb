-- bitsweep schema, version 1.
--
-- schema_version  one row per applied migration (store/migrations.cc applies each file once, in
--                 one transaction, under pg_advisory_xact_lock so coordinators may start at once).
-- sweeps          a client's request: request_id is the client's idempotency key (a replayed
--                 SubmitSweep returns the original id); spec is the sweep as submitted (JSON);
--                 state is ACTIVE or CANCELED (job states say how far it got).
-- jobs            one unit of work, shared by every sweep that asks for the same job_key (work is
--                 never done twice). sweep_id is the sweep that first submitted it (fairness).
--                 state follows common/job_state.h; every change is a row of job_events.
--                 Lease: worker_id, lease_epoch (fencing token, +1 per lease), lease_deadline,
--                 leased_at / renewed_at (Kubernetes LeaseSpec). attempt counts leases;
--                 not_before holds a job back after a retryable failure (exponential backoff).
--                 devices / memory_gb / tp are what a worker must offer to run it; artifact_key
--                 names the checkpoint it loads (workers holding it are preferred).
-- sweep_jobs      which jobs each sweep asked for (many-to-many).
-- job_events      append-only history: every transition (from_state is NULL for SUBMIT).
-- results         metrics of a SUCCEEDED job, written in the transaction of its COMPLETE;
--                 UNIQUE(job_id, metric) makes them exactly-once.
-- workers         registered workers: capabilities, labels, last heartbeat, artifacts held.
--
-- Times are timestamptz; the store passes them in from the coordinator's clock (which tests
-- control), never uses now().

CREATE TABLE sweeps (
  id          bigserial PRIMARY KEY,
  request_id  text NOT NULL UNIQUE,
  name        text NOT NULL,
  spec        json NOT NULL,
  priority    integer NOT NULL DEFAULT 0,
  state       text NOT NULL DEFAULT 'ACTIVE' CHECK (state IN ('ACTIVE', 'CANCELED')),
  created_at  timestamptz NOT NULL
);

CREATE TABLE workers (
  id              bigserial PRIMARY KEY,
  name            text NOT NULL UNIQUE,
  devices         integer NOT NULL DEFAULT 0 CHECK (devices >= 0),
  memory_gb       double precision NOT NULL DEFAULT 0 CHECK (memory_gb >= 0),
  tp              integer NOT NULL DEFAULT 1 CHECK (tp >= 1),
  labels          json NOT NULL DEFAULT '{}',
  artifacts       text[] NOT NULL DEFAULT '{}',
  registered_at   timestamptz NOT NULL,
  last_heartbeat  timestamptz NOT NULL
);

CREATE TABLE jobs (
  id                bigserial PRIMARY KEY,
  sweep_id          bigint NOT NULL REFERENCES sweeps (id),
  job_key           text NOT NULL UNIQUE,
  artifact_key      text NOT NULL DEFAULT '',
  spec              json NOT NULL,
  state             text NOT NULL CHECK (state IN ('PENDING', 'LEASED', 'SUCCEEDED', 'FAILED',
                                                   'CANCELED', 'CANCEL_REQUESTED')),
  priority          integer NOT NULL DEFAULT 0,
  attempt           integer NOT NULL DEFAULT 0,
  max_attempts      integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
  lease_epoch       bigint NOT NULL DEFAULT 0,
  worker_id         bigint REFERENCES workers (id),
  lease_deadline    timestamptz,
  leased_at         timestamptz,
  renewed_at        timestamptz,
  not_before        timestamptz NOT NULL,
  cancel_requested  boolean NOT NULL DEFAULT false,
  devices           integer NOT NULL DEFAULT 0 CHECK (devices >= 0),
  memory_gb         double precision NOT NULL DEFAULT 0 CHECK (memory_gb >= 0),
  tp                integer NOT NULL DEFAULT 1 CHECK (tp >= 1),
  last_error        text NOT NULL DEFAULT '',
  created_at        timestamptz NOT NULL,
  updated_at        timestamptz NOT NULL,
  finished_at       timestamptz
);
-- Lease candidates (per sweep and per artifact, in lease order), held jobs (fairness counts,
-- lease expiry): partial indexes over live jobs only.
CREATE INDEX jobs_pending_sweep ON jobs (sweep_id, priority DESC, id) WHERE state = 'PENDING';
CREATE INDEX jobs_pending_artifact ON jobs (artifact_key, priority DESC, id)
  WHERE state = 'PENDING';
CREATE INDEX jobs_held_sweep ON jobs (sweep_id) WHERE state IN ('LEASED', 'CANCEL_REQUESTED');
CREATE INDEX jobs_held_deadline ON jobs (lease_deadline)
  WHERE state IN ('LEASED', 'CANCEL_REQUESTED');
CREATE INDEX jobs_state ON jobs (state);
CREATE INDEX jobs_sweep ON jobs (sweep_id);

CREATE TABLE sweep_jobs (
  sweep_id  bigint NOT NULL REFERENCES sweeps (id),
  job_id    bigint NOT NULL REFERENCES jobs (id),
  PRIMARY KEY (sweep_id, job_id)
);
CREATE INDEX sweep_jobs_job ON sweep_jobs (job_id);

CREATE TABLE job_events (
  id          bigserial PRIMARY KEY,
  job_id      bigint NOT NULL REFERENCES jobs (id),
  at          timestamptz NOT NULL,
  from_state  text,
  to_state    text NOT NULL,
  event       text NOT NULL,
  epoch       bigint NOT NULL,
  worker_id   bigint,
  reason      text NOT NULL DEFAULT ''
);
CREATE INDEX job_events_job ON job_events (job_id, id);

CREATE TABLE results (
  id          bigserial PRIMARY KEY,
  job_id      bigint NOT NULL REFERENCES jobs (id),
  metric      text NOT NULL,
  value       double precision NOT NULL,
  stderr      double precision NOT NULL DEFAULT 0,
  n           bigint NOT NULL DEFAULT 0,
  provenance  json NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL,
  UNIQUE (job_id, metric)
);
