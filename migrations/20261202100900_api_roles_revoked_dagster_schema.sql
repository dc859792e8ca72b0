-- Issue 13 "Let no one in". Runs after every other migration of this release.
--
-- 1. Dagster's storage (runs, event logs with error texts and links) gets its own schema, which
--    the Supabase Data API does not serve; `db.dagster_storage_url` points Dagster at it
--    (search_path=dagster). Production: the same, see docs/deploy.md section 1.
-- 2. The Data API roles (anon, authenticated) need nothing from this project: every right on
--    every table, sequence and function of its schemas is revoked, for existing objects and
--    (default privileges) for objects created later by the role running migrations (Dagster's
--    tables, later migrations). Row-level security stays on as the second wall.
create schema if not exists dagster;
revoke all on schema dagster from public;

do $$
declare
    api_role text;
    target text;
begin
    foreach api_role in array array['anon', 'authenticated'] loop
        continue when not exists (select 1 from pg_roles where rolname = api_role);
        foreach target in array array['public', 'dagster', 'supabase_migrations'] loop
            continue when not exists (select 1 from pg_namespace where nspname = target);
            execute format('revoke all on all tables in schema %I from %I', target, api_role);
            execute format('revoke all on all sequences in schema %I from %I', target, api_role);
            execute format('revoke all on all functions in schema %I from %I', target, api_role);
            execute format('alter default privileges in schema %I revoke all on tables from %I', target, api_role);
            execute format('alter default privileges in schema %I revoke all on sequences from %I', target, api_role);
            execute format('alter default privileges in schema %I revoke all on functions from %I', target, api_role);
        end loop;
        -- Defaults not tied to a schema (they would reach the dagster schema's tables too).
        execute format('alter default privileges revoke all on tables from %I', api_role);
        execute format('alter default privileges revoke all on sequences from %I', api_role);
        execute format('alter default privileges revoke all on functions from %I', api_role);
        execute format('revoke all on schema dagster from %I', api_role);
        execute format('revoke all on schema supabase_migrations from %I', api_role);
        -- Undo the explicit grant of 20261201090100 (PUBLIC keeps the default usage of public).
        execute format('revoke all on schema public from %I', api_role);
    end loop;
end
$$;
