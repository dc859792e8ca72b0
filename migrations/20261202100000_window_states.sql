-- A renewal window's life as an explicit state machine in the Bison ledger:
-- pending -> list_created -> list_verified -> attached -> done (see leads/calendar.WINDOW_STATES).
-- Old statuses map to the state from which the next run redoes only what may be missing:
-- 'uploaded' was written before the count check, 'skipped' never attached its list.
-- 'attached' with a new title was renamed too: done.
update public.client_lead_batches set status = case
    when status = 'uploaded' then 'list_created'
    when status = 'skipped' then 'list_verified'
    when status = 'attached' and campaign_title_after is distinct from campaign_title_before then 'done'
    else status end
where status in ('uploaded', 'skipped', 'attached');

alter table public.client_lead_batches
    add column if not exists list_requested_at timestamptz,
    add column if not exists list_verified_at timestamptz,
    add column if not exists campaign_leads_before integer,
    add column if not exists campaign_leads_after integer,
    add column if not exists done_at timestamptz,
    add column if not exists list_announced_at timestamptz,
    add column if not exists evergreen_announced_at timestamptz,
    add column if not exists missed_reported_at timestamptz,
    add column if not exists updated_at timestamptz not null default now();

alter table public.client_lead_batches
    add constraint client_lead_batches_state
    check (status in ('pending', 'list_created', 'list_verified', 'attached', 'done'));

-- A list id is one window's list: never recorded for two windows.
create unique index if not exists client_lead_batches_list_id
    on public.client_lead_batches (client_slug, bison_list_id) where bison_list_id is not null;

-- Which campaign is a client's Evergreen campaign: a title pattern in the client file
-- (null: 'Evergreen', or 'HNW Evergreen' for a high-net-worth routing destination).
alter table public.clients add column if not exists campaign_name text;

-- The campaign found for that pattern, kept after the first match (looked up by id after).
create table if not exists public.client_campaigns (
    client_slug text primary key references public.clients (slug) on update cascade on delete cascade,
    pattern text not null,
    campaign_id text not null,
    campaign_name text not null,
    found_at timestamptz not null default now()
);
alter table public.client_campaigns enable row level security;
