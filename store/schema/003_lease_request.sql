-- bitsweep schema, version 3: Lease is idempotent by the worker's request id.
--
-- jobs.lease_request_id  the request id (LeaseRequest.request_id) of the Lease call that took the
--                        job's current lease; NULL when that call sent none. A Lease repeated
--                        with the same worker and request id while the job is still held
--                        answers that job again (same epoch, same attempt) instead of leasing
--                        another one, so a lost Lease reply neither strands a job nor uses an
--                        attempt. A later lease overwrites it.

ALTER TABLE jobs ADD COLUMN lease_request_id text;
CREATE INDEX jobs_lease_request ON jobs (worker_id, lease_request_id)
  WHERE lease_request_id IS NOT NULL AND state IN ('LEASED', 'CANCEL_REQUESTED');
