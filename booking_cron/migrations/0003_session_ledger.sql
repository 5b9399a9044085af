-- The deduction ledger: one session_usage row per session taken from a pack.
-- A booking can own at most one row (the exactly-once guarantee lives in this index).
-- Usage that existed before the ledger is recorded as baseline rows, so that
-- sessions_used = count(ledger rows) holds from the first audit on.

alter table public.session_usage add column if not exists booking_id uuid
  references public.bookings(id) on delete set null;
alter table public.session_usage add column if not exists source text not null default 'legacy';

create unique index if not exists session_usage_booking_id_key
  on public.session_usage (booking_id) where booking_id is not null;
create index if not exists session_usage_purchase_id_idx on public.session_usage (purchase_id);

insert into public.session_usage (org_id, client_id, purchase_id, session_date, source)
select cp.org_id, cp.client_id, cp.id, current_date, 'baseline'
from public.client_purchases cp
cross join lateral (
  select count(*) as recorded from public.session_usage su where su.purchase_id = cp.id
) ledger
cross join lateral generate_series(1, coalesce(cp.sessions_used, 0) - ledger.recorded::int)
where coalesce(cp.sessions_used, 0) > ledger.recorded;
