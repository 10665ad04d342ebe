-- One login role and one database per service; each database is owned by its
-- role and closed to PUBLIC, so no service can connect to another's database.
-- Dev-only passwords: <service>-dev (the *_DATABASE_URL values in stack.mk).
--
-- Idempotent; run as superuser with psql (uses \gexec):
--   * by deploy/local/postgres.sh on every start of the local stack;
--   * by the postgres image's /docker-entrypoint-initdb.d (deploy/compose.yaml).
\set services '{initiatives,vouchers,notifications,portal}'

SELECT format('CREATE ROLE %I LOGIN', s)
  FROM unnest(:'services'::text[]) AS s
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = s)
\gexec

SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', s, s || '-dev')
  FROM unnest(:'services'::text[]) AS s
\gexec

SELECT format('CREATE DATABASE %I OWNER %I', s, s)
  FROM unnest(:'services'::text[]) AS s
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = s)
\gexec

SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', s)
  FROM unnest(:'services'::text[]) AS s
\gexec
