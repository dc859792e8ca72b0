-- Issue 21. The API roles (anon, authenticated) lost their own rights in 20261202100900, but
-- every role is also a member of PUBLIC, which PostgreSQL gives USAGE on schema `public` and
-- EXECUTE on every function created anywhere. Revoked here: for the schema, for the functions
-- that exist, and by default for functions the role running migrations creates later (a global
-- default: per-schema defaults cannot take back what the global default grants). Tables and
-- sequences created later already grant the API roles nothing (20261202100900). The pipeline
-- connects as the owner (the service role), which needs none of these grants.
revoke all on schema public from public;
revoke all on all tables in schema public from public;
revoke all on all sequences in schema public from public;
revoke execute on all functions in schema public from public;
alter default privileges revoke execute on functions from public;
