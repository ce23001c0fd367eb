-- bitsweep schema, version 4: the database's identity.
--
-- cluster  one row: a random id made when this migration ran. A coordinator gives it to workers
--          at Register; a worker keeps it with every result it spools and re-sends a spooled
--          result after a restart only to a coordinator of the same database, so a result never
--          lands on a job of another deployment that happens to have the same id and epoch. A
--          database restored from a backup keeps its id (its jobs are the same).

CREATE TABLE cluster (
  id  text PRIMARY KEY CHECK (id <> '')
);
INSERT INTO cluster (id) VALUES (md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text));
