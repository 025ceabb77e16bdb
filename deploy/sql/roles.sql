-- PostgreSQL roles for the read models, least privilege first. Run once per database
-- as a superuser (or the database owner), e.g.
--   psql "$ADMIN_URL" -v ON_ERROR_STOP=1 -f deploy/sql/roles.sql
-- then give each LOGIN role a password with \password (never in this file).
--
--   projectionist          owns the tables: first start, `rebuild` (creates and swaps)
--   projectionist_writer   DML only: the consumers and `reconcile --repair`
--   projectionist_reader   SELECT only, read-only sessions: the query API

CREATE ROLE projectionist LOGIN;
CREATE ROLE projectionist_writer LOGIN;
CREATE ROLE projectionist_reader LOGIN;

-- Only the owner may create objects (PostgreSQL 15 already revokes CREATE from PUBLIC).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO projectionist;
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

-- Belt and braces: the reader's sessions start read-only even without the grant limits.
ALTER ROLE projectionist_reader SET default_transaction_read_only = on;
