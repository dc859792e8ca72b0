-- High-net-worth routing: homes above `threshold` in `source_states` of `source_clients` are
-- moved to `destination_client` (the agency's HNW client) instead of being rejected.
create table if not exists public.hnw_routing_rules (
    name text primary key,
    destination_client text not null references public.clients (slug) on update cascade,
    source_states text[] not null,
    source_clients text[] not null,
    threshold numeric not null default 900000
);
alter table public.hnw_routing_rules enable row level security;

-- Supabase's API roles. On Supabase they exist already; on a plain server (the embedded default,
-- tests) they are created so RLS can be shown to hide every row from them.
do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'anon') then
        create role anon nologin;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'authenticated') then
        create role authenticated nologin;
    end if;
end
$$;
grant usage on schema public to anon, authenticated;
grant select on all tables in schema public to anon, authenticated;
