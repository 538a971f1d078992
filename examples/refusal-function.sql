-- pgward's refusal procedure: pgward has the server raise a refusal inside a
-- transaction block (so the block is aborted as by any failed statement),
-- and through it the error is not written to the server's log.
-- Run it once per database as a superuser (the procedure sets
-- log_min_messages, which only a superuser may), then grant EXECUTE to every
-- login pgward uses there. pgward finds it at each session's start; without
-- it, refusals in a block are raised by a DO block and are logged.
-- (The file is named for the role it plays; what it makes is a procedure.)
BEGIN;
CREATE SCHEMA IF NOT EXISTS pgward;
REVOKE ALL ON SCHEMA pgward FROM PUBLIC;
-- A procedure: CALL answers with no row description.
CREATE OR REPLACE PROCEDURE pgward.refuse(code text, message text, detail text, hint text)
  LANGUAGE plpgsql
  SECURITY DEFINER
  SET log_min_messages = 'panic'
  SET log_min_error_statement = 'panic'
  SET search_path = pg_catalog
AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = code, MESSAGE = message, DETAIL = detail, HINT = hint;
END
$$;
REVOKE ALL ON PROCEDURE pgward.refuse(text, text, text, text) FROM PUBLIC;
-- For each login pgward uses on this database (the service login and every
-- login of [databases.NAME.logins]):
--   GRANT USAGE ON SCHEMA pgward TO pgward_svc;
--   GRANT EXECUTE ON PROCEDURE pgward.refuse(text, text, text, text) TO pgward_svc;
COMMIT;
