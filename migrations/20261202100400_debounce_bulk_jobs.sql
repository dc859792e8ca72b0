-- DeBounce bulk jobs, one row per list of addresses handed to DeBounce (keyed by a hash of the
-- sorted addresses). The row is written before the upload is sent, so a rerun finds the paid job
-- instead of uploading the same list again: DeBounce documents no way to look a list up, only
-- `status/?list_id=`, so an upload whose answer was lost (list_id null) is never repeated blind.
create table if not exists public.debounce_bulk_jobs (
    listing_key text primary key,
    address_count integer not null,
    storage_path text,
    list_id text,
    status text not null check (status in ('uploading', 'processing', 'completed', 'failed')),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
alter table public.debounce_bulk_jobs enable row level security;
