-- bitsweep schema, version 6: the GPUs a worker registers.
--
-- workers.gpus  a JSON array, one object per GPU the worker discovered when it started
--               ({"index", "id", "name", "total_bytes", "free_bytes"}; RegisterRequest.gpus),
--               [] for a CPU worker. Replaced at every registration.

ALTER TABLE workers ADD COLUMN gpus json NOT NULL DEFAULT '[]';
