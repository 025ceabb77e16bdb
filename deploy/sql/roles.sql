-- PostgreSQL roles for the read models, least privilege first. Run once per database
-- as a superuser (or the database owner), e.g.
--   psql "$ADMIN_URL" -v ON_ERROR_STOP=1 -f deploy/sql/roles.sql
-- then give each LOGIN role a password with \password (never in this file).
--
--   projectionist          owns the read models: first start, `rebuild` (creates and swaps)
--   projectionist_writer   DML only: the consumers and `reconcile --repair`
--   projectionist_reader   SELECT on the read models only, read-only sessions: the query API
--   projectionist_commands owns the command side's tables (cmd_*, outbox) when
--                          both sides share this database: none of them is the reader's

CREATE ROLE projectionist LOGIN;
CREATE ROLE projectionist_writer LOGIN;
CREATE ROLE projectionist_reader LOGIN;
CREATE ROLE projectionist_commands LOGIN;

-- Only the owner may create objects (PostgreSQL 15 already revokes CREATE from PUBLIC).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO projectionist, projectionist_commands;
GRANT USAGE ON SCHEMA public TO projectionist_writer, projectionist_reader;

-- Tables that exist now ...
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO projectionist_writer;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO projectionist_writer;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO projectionist_reader;

-- ... and every table the owner creates later (new projection versions, rebuilds).
ALTER DEFAULT PRIVILEGES FOR ROLE projectionist IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO projectionist_writer;
ALTER DEFAULT PRIVILEGES FOR ROLE projectionist IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO projectionist_writer;
ALTER DEFAULT PRIVILEGES FOR ROLE projectionist IN SCHEMA public
    GRANT SELECT ON TABLES TO projectionist_reader;

-- The command side's tables, if they exist already: never the reader's (the default
-- privileges above cover only what projectionist creates; projectionist_commands'
-- tables get no grant at all).
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['cmd_posts', 'cmd_post_tags', 'cmd_orders', 'cmd_order_lines', 'outbox'] LOOP
        IF to_regclass('public.' || t) IS NOT NULL THEN
            EXECUTE 'REVOKE ALL ON public.' || quote_ident(t) || ' FROM projectionist_reader';
        END IF;
    END LOOP;
END $$;

-- Large objects: nothing here uses them; nobody may create or read them (lo_from_bytea
-- would let any role store data outside every table's grants).
REVOKE EXECUTE ON FUNCTION
    lo_create(oid), lo_creat(integer), lo_from_bytea(oid, bytea), lo_open(oid, integer),
    lo_close(integer), loread(integer, integer), lowrite(integer, bytea),
    lo_lseek(integer, integer, integer), lo_lseek64(integer, bigint, integer),
    lo_tell(integer), lo_tell64(integer), lo_truncate(integer, integer),
    lo_truncate64(integer, bigint), lo_unlink(oid), lo_get(oid),
    lo_get(oid, bigint, integer), lo_put(oid, bigint, bytea)
FROM PUBLIC;

-- Advisory locks: only the roles that run DDL take 'projectionist.ddl'; the reader could
-- otherwise hold it and stall every consumer's start.
REVOKE EXECUTE ON FUNCTION
    pg_advisory_lock(bigint), pg_advisory_lock(integer, integer),
    pg_advisory_lock_shared(bigint), pg_advisory_lock_shared(integer, integer),
    pg_try_advisory_lock(bigint), pg_try_advisory_lock(integer, integer),
    pg_try_advisory_lock_shared(bigint), pg_try_advisory_lock_shared(integer, integer),
    pg_advisory_xact_lock(bigint), pg_advisory_xact_lock(integer, integer),
    pg_advisory_xact_lock_shared(bigint), pg_advisory_xact_lock_shared(integer, integer),
    pg_try_advisory_xact_lock(bigint), pg_try_advisory_xact_lock(integer, integer),
    pg_try_advisory_xact_lock_shared(bigint), pg_try_advisory_xact_lock_shared(integer, integer)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pg_advisory_xact_lock(bigint)
    TO projectionist, projectionist_writer, projectionist_commands;

-- Belt and braces: the reader's sessions start read-only even without the grant limits.
-- A role may change its own defaults (ALTER ROLE ... SET), so this is not the guard:
-- the grants are, and the query API's engine asks for read-only sessions itself and
-- checks at connect that it got one.
ALTER ROLE projectionist_reader SET default_transaction_read_only = on;
