-- Issue 19: year two against the documented Email Bison.
--
-- 1. A lead is its email within a workspace (vendor fact B-UNIQUE): next year's renewal of the
--    same homeowner is already in the Evergreen campaign. Which of a window's leads a campaign
--    already holds is known from the emails of the windows attached to it before: kept as a
--    SHA-256 of the lower-cased address (the address itself stays in cleaned_leads only).
alter table public.client_lead_batch_leads add column if not exists email_hash text;
update public.client_lead_batch_leads l
set email_hash = encode(sha256(convert_to(lower(btrim(c.email)), 'UTF8')), 'hex')
from public.cleaned_leads c
where l.email_hash is null and c.client_slug = l.client_slug and c.month = l.month
  and c.dedupe_key = l.dedupe_key and c.email is not null;
create index if not exists client_lead_batch_leads_email_hash
    on public.client_lead_batch_leads (email_hash);

-- 2. Per window: how many of its leads the campaign lacked (the growth of total_leads the attach
--    check waits for), how many it held from an earlier year (returning homeowners), where the
--    list sat in Bison's paged list of lead lists, and rows Bison refused with a person's go-ahead.
alter table public.client_lead_batches
    add column if not exists leads_new integer,
    add column if not exists leads_in_campaign integer,
    add column if not exists leads_returning integer,
    add column if not exists list_position integer,
    add column if not exists refused_rows integer,
    add column if not exists refused_messages text,
    add column if not exists refused_accepted_at timestamptz,
    add column if not exists refused_accepted_by text;

-- 3. Custom variables seen to exist in a Bison workspace: a new list then costs no look-up.
create table if not exists public.bison_custom_variables (
    workspace_name text not null,
    name text not null,
    confirmed_at timestamptz not null default now(),
    primary key (workspace_name, name)
);
alter table public.bison_custom_variables enable row level security;
