-- bitsweep schema, version 5: worker sessions.
--
-- workers.session  the secret the worker process registered with (RegisterRequest.session; it
--                  keeps it in its state directory, so a restarted worker resumes it). NULL for
--                  a worker that sent none. Every call about a leased job (Heartbeat, Complete,
--                  Fail) must present the session of the worker that holds the lease, checked in
--                  the statement that checks the lease epoch; a Register under a name whose
--                  session is another one and was seen within the lease TTL is refused.

ALTER TABLE workers ADD COLUMN session text;
