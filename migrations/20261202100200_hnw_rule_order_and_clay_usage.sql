-- High-net-worth rules are tried in the order the client file lists them (first match wins).
alter table public.hnw_routing_rules add column if not exists position integer not null default 0;

-- Clay's limits, counted across runs, processes and clients: rows per table (the SOP keeps at
-- most 40,000) and submissions per webhook (50,000 in a webhook's whole life). One row per
-- webhook; a table's rows are the sum over its webhooks. Reserved before a push is sent, so a
-- push that fails halfway is counted in full (fail safe: Clay may have taken those rows).
create table if not exists public.clay_webhook_usage (
    webhook_id text primary key,
    table_name text not null,
    submissions integer not null default 0 check (submissions >= 0),
    -- Clay refused the webhook for its limit (used outside this project too): take no more.
    used_up boolean not null default false,
    updated_at timestamptz not null default now()
);
create index if not exists clay_webhook_usage_table on public.clay_webhook_usage (table_name);
alter table public.clay_webhook_usage enable row level security;

-- Routed-in leads and leads another client already held, counted apart in the totals and the
-- gap report (a high-net-worth destination's cleaned leads are all routed in).
alter table public.monthly_cleaned_leads add column if not exists routed_in_count integer not null default 0;
alter table public.monthly_cleaned_leads add column if not exists held_by_other_client_count integer not null default 0;
alter table public.gap_reports add column if not exists routed_in_count integer not null default 0;
alter table public.gap_reports add column if not exists held_by_other_client_count integer not null default 0;
