-- Territories carry forward: every sheet import, assignment and move is kept as a change that
-- applies from its month on. The ZIPs of month M are the latest sheet at or before M plus the
-- assignments and moves approved since; `client_zipcodes` holds that result per month (with the
-- counts and pulled_at of each pull), written when a month is pulled or a change touches it.
create table if not exists public.territory_changes (
    id bigserial primary key,
    kind text not null check (kind in ('sheet', 'assign', 'move')),
    month text not null check (month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    zip text not null check (zip ~ '^[0-9]{5}$'),
    state text not null check (state ~ '^[A-Z]{2}$'),
    color text,
    client_slug text not null references public.clients (slug) on update cascade,
    from_client text references public.clients (slug) on update cascade,
    approved_by text not null default current_user,
    approved_at timestamptz not null default now(),
    check ((kind = 'move') = (from_client is not null))
);
create index if not exists territory_changes_month on public.territory_changes (month, id);
alter table public.territory_changes enable row level security;

-- What was assigned before this migration becomes that month's sheet.
insert into public.territory_changes (kind, month, zip, state, color, client_slug, approved_by, approved_at)
select 'sheet', month, zip, state, color, client_slug, 'migration', assigned_at
from public.client_zipcodes
where not exists (select 1 from public.territory_changes);

-- Minimum to proceed: a fourth gap status, and a per-client hold on weekly uploads.
alter table public.gap_reports drop constraint if exists gap_reports_status_check;
alter table public.gap_reports add constraint gap_reports_status_check
    check (status in ('met', 'under', 'below_minimum', 'over'));
alter table public.clients add column if not exists hold_below_minimum boolean not null default false;

-- A person's go-ahead to upload a month that is below the client's minimum to proceed.
create table if not exists public.upload_approvals (
    client_slug text not null references public.clients (slug) on update cascade,
    month text not null check (month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    approved_by text not null,
    approved_at timestamptz not null default now(),
    cleaned_count integer,
    minimum_to_proceed integer,
    primary key (client_slug, month)
);
alter table public.upload_approvals enable row level security;
