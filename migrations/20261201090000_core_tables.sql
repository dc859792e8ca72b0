-- Core tables of the homeowner pipeline. Names kept from the predecessor system so its
-- dashboard keeps reading them; columns added for partitions, counts and idempotent writes.

create table if not exists public.clients (
    slug text primary key check (slug ~ '^[a-z0-9][a-z0-9_-]*$'),
    name text not null,
    workspace_name text not null,
    bison_instance_url text,
    bison_token_env text,
    package_tier integer not null check (package_tier in (100, 200)),
    target_override integer check (target_override > 0),
    licensed_states text[] not null default '{}',
    max_home_value numeric not null default 900000,
    head_of_household_required boolean not null default true,
    sample_surplus boolean not null default false,
    slack_channel text,
    active boolean not null default true,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

-- A ZIP belongs to at most one client per renewal month.
create table if not exists public.client_zipcodes (
    client_slug text not null references public.clients (slug) on update cascade,
    client_name text not null,
    workspace_name text not null,
    month text not null check (month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    zip text not null check (zip ~ '^[0-9]{5}$'),
    state text not null check (state ~ '^[A-Z]{2}$'),
    color text,
    raw_count integer,
    cleaned_count integer,
    assigned_at timestamptz not null default now(),
    pulled_at timestamptz,
    primary key (month, zip)
);
create index if not exists client_zipcodes_client_month on public.client_zipcodes (client_slug, month);

-- Every row of every Cole export, as downloaded (all columns kept in `record`).
create table if not exists public.raw_leads (
    client_slug text not null references public.clients (slug) on update cascade,
    month text not null,
    source_export text not null,
    source_row integer not null,
    state text,
    zip text,
    record jsonb not null,
    pulled_at timestamptz not null default now(),
    primary key (client_slug, month, source_export, source_row)
);

create table if not exists public.cleaned_leads (
    client_slug text not null references public.clients (slug) on update cascade,
    month text not null,
    dedupe_key text not null,
    first_name text,
    last_name text,
    email text not null,
    phone text,
    address text,
    city text,
    state text,
    zip text not null,
    date_of_birth text,
    home_value numeric,
    purchase_date date,
    purchase_day integer,
    readable_purchase_date text,
    renewal_date date not null,
    renewal_window date not null,
    source_export text,
    source_row integer,
    routed_from text,
    surplus boolean not null default false,
    loaded_at timestamptz not null default now(),
    primary key (client_slug, month, dedupe_key),
    -- one homeowner, one client, per renewal month
    unique (month, dedupe_key)
);
create index if not exists cleaned_leads_window on public.cleaned_leads (client_slug, renewal_window);

-- Every raw row that did not become a cleaned lead, with its one reason.
create table if not exists public.rejected_leads (
    client_slug text not null references public.clients (slug) on update cascade,
    month text not null,
    source_export text not null,
    source_row integer not null,
    reason text not null,
    zip text,
    home_value numeric,
    record jsonb not null,
    primary key (client_slug, month, source_export, source_row)
);

-- Cache: an address verified within the freshness window is not paid for again.
create table if not exists public.email_verifications (
    email text primary key,
    code integer not null,
    result text not null,
    safe_to_send boolean not null,
    provider text not null,
    verified_at timestamptz not null default now()
);

create table if not exists public.monthly_cleaned_leads (
    client_slug text not null references public.clients (slug) on update cascade,
    client_name text not null,
    workspace_name text not null,
    month text not null,
    raw_count integer not null default 0,
    cleaned_count integer not null default 0,
    rejected_count integer not null default 0,
    routed_count integer not null default 0,
    target_count integer not null,
    gap integer not null,
    updated_at timestamptz not null default now(),
    primary key (client_slug, month)
);

create table if not exists public.gap_reports (
    client_slug text not null references public.clients (slug) on update cascade,
    month text not null,
    status text not null check (status in ('under', 'met', 'over')),
    cleaned_count integer not null,
    target_count integer not null,
    gap integer not null,
    minimum_to_proceed integer not null,
    meets_minimum boolean not null,
    suggestions jsonb not null default '[]',
    report_markdown text not null default '',
    created_at timestamptz not null default now(),
    primary key (client_slug, month)
);

-- The Email Bison ledger: one row per client and renewal window.
create table if not exists public.client_lead_batches (
    client_slug text not null references public.clients (slug) on update cascade,
    window_start date not null,
    window_end date not null,
    month text not null,
    list_name text not null,
    bison_list_id text,
    lead_count integer not null default 0,
    uploaded_at timestamptz,
    campaign_id text,
    campaign_title_before text,
    campaign_title_after text,
    attached_at timestamptz,
    status text not null default 'pending',
    primary key (client_slug, window_start)
);

-- Which lead went out in which list: a lead is uploaded at most once per renewal month.
create table if not exists public.client_lead_batch_leads (
    client_slug text not null,
    window_start date not null,
    month text not null,
    dedupe_key text not null,
    primary key (client_slug, window_start, dedupe_key),
    unique (month, dedupe_key),
    foreign key (client_slug, window_start)
        references public.client_lead_batches (client_slug, window_start) on delete cascade
);

create table if not exists public.agent_runs (
    run_id text primary key,
    job_name text not null,
    client_slug text,
    partition_key text,
    status text not null,
    started_at timestamptz,
    finished_at timestamptz,
    run_url text,
    trace_url text,
    error_count integer not null default 0,
    updated_at timestamptz not null default now()
);

create table if not exists public.agent_errors (
    id bigserial primary key,
    run_id text,
    client_slug text,
    step text,
    error_type text not null,
    message text not null,
    screenshot_url text,
    trace_url text,
    created_at timestamptz not null default now()
);
create index if not exists agent_errors_run on public.agent_errors (run_id);

-- Row-level security on every table; the pipeline connects with the service role (or the
-- database owner), which bypasses it. No policy is granted to anon or authenticated.
alter table public.clients enable row level security;
alter table public.client_zipcodes enable row level security;
alter table public.raw_leads enable row level security;
alter table public.cleaned_leads enable row level security;
alter table public.rejected_leads enable row level security;
alter table public.email_verifications enable row level security;
alter table public.monthly_cleaned_leads enable row level security;
alter table public.gap_reports enable row level security;
alter table public.client_lead_batches enable row level security;
alter table public.client_lead_batch_leads enable row level security;
alter table public.agent_runs enable row level security;
alter table public.agent_errors enable row level security;
