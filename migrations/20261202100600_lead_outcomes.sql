-- Close the loop: what Email Bison reports for each uploaded lead, per renewal window, and the
-- measured yield per ZIP. No reply text and no homeowner contact details are stored here.

create table if not exists public.lead_outcomes (
    client_slug text not null references public.clients (slug) on update cascade,
    window_start date not null,
    month text not null,
    dedupe_key text not null,
    zip text not null,
    verification_result text not null default 'unknown',
    replied boolean not null default false,
    interested boolean not null default false,
    bounced boolean not null default false,
    unsubscribed boolean not null default false,
    automated_reply boolean not null default false,
    first_reply_at timestamptz,
    measured_at timestamptz not null default now(),
    primary key (client_slug, window_start, dedupe_key)
);
create index if not exists lead_outcomes_client_month on public.lead_outcomes (client_slug, month);

-- One row per client and renewal window: the campaign's stats over the window's active dates
-- (numbers Bison sends as strings, stored as integers) and what the replies matched.
create table if not exists public.window_outcomes (
    client_slug text not null references public.clients (slug) on update cascade,
    window_start date not null,
    month text not null,
    campaign_id text not null,
    stats_start date not null,
    stats_end date not null,
    emails_sent integer not null default 0,
    leads_contacted integer not null default 0,
    stats_replied integer not null default 0,
    stats_interested integer not null default 0,
    stats_bounced integer not null default 0,
    stats_unsubscribed integer not null default 0,
    leads integer not null default 0,
    replied integer not null default 0,
    interested integer not null default 0,
    bounced integer not null default 0,
    unsubscribed integer not null default 0,
    automated_replies integer not null default 0,
    unmatched_replies integer not null default 0,
    api_requests integer not null default 0,
    measured_at timestamptz not null default now(),
    primary key (client_slug, window_start)
);

create table if not exists public.zip_yields (
    client_slug text not null references public.clients (slug) on update cascade,
    month text not null,
    zip text not null,
    leads integer not null,
    replies integer not null,
    interested integer not null,
    bounces integer not null,
    interested_per_1000 numeric not null,
    shrunk_per_1000 numeric not null,
    lower_per_1000 numeric not null,
    upper_per_1000 numeric not null,
    low_yield boolean not null default false,
    measured_at timestamptz not null default now(),
    primary key (client_slug, month, zip)
);

create table if not exists public.verification_bounce_rates (
    client_slug text not null references public.clients (slug) on update cascade,
    month text not null,
    verification_result text not null,
    leads integer not null,
    bounces integer not null,
    bounce_rate numeric not null,
    lower numeric not null,
    upper numeric not null,
    measured_at timestamptz not null default now(),
    primary key (client_slug, month, verification_result)
);

alter table public.lead_outcomes enable row level security;
alter table public.window_outcomes enable row level security;
alter table public.zip_yields enable row level security;
alter table public.verification_bounce_rates enable row level security;
