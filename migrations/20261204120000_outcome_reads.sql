-- Outcome reads become incremental (issue 22): each Monday one read per campaign, from a stored
-- cursor (the newest reply read so far), its replies assigned to windows through the ledger.
-- Each lead outcome now remembers Bison's lead id, how its reply was matched, and when its window
-- was attached on Bison's clock (the estimator's exposure: how long the lead has had to answer).

create table if not exists public.campaign_reads (
    client_slug text not null references public.clients (slug) on update cascade,
    campaign_id text not null,
    read_at timestamptz not null default now(),
    as_of timestamptz not null,
    cursor_before timestamptz,
    cursor_after timestamptz,
    requests integer not null,
    new_replies integer not null,
    pages_of_new_replies integer not null,
    matched_by_lead_id integer not null default 0,
    matched_by_address integer not null default 0,
    unmatched integer not null default 0,
    before_attach integer not null default 0,
    second_replies integer not null default 0,
    stats_start date,
    emails_sent integer,
    leads_contacted integer,
    stats_replied integer,
    stats_interested integer,
    stats_bounced integer,
    stats_unsubscribed integer,
    primary key (client_slug, campaign_id, read_at)
);
alter table public.campaign_reads enable row level security;

alter table public.lead_outcomes
    add column if not exists campaign_id text,
    add column if not exists bison_lead_id bigint,
    add column if not exists matched_by text,
    add column if not exists attached_at timestamptz;

-- Bison's stats are per campaign now (campaign_reads); a window's row keeps our own counts.
alter table public.window_outcomes
    alter column stats_start drop not null,
    alter column stats_end drop not null,
    alter column emails_sent drop not null,
    alter column leads_contacted drop not null,
    alter column stats_replied drop not null,
    alter column stats_interested drop not null,
    alter column stats_bounced drop not null,
    alter column stats_unsubscribed drop not null,
    alter column emails_sent drop default,
    alter column leads_contacted drop default,
    alter column stats_replied drop default,
    alter column stats_interested drop default,
    alter column stats_bounced drop default,
    alter column stats_unsubscribed drop default,
    add column if not exists mature_leads integer,
    add column if not exists as_of timestamptz;

-- zip_yields: shrunk_per_1000 is now the posterior mean of the hierarchical estimate, the
-- interval a 90 % one; mature leads counted and the probability of lying below the average kept.
alter table public.zip_yields
    add column if not exists mature_leads integer not null default 0,
    add column if not exists p_below_average numeric;
