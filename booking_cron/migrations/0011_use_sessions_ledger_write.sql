-- Edited after release (issue 15): a function-level `set booking_cron.ledger_write` needs a superuser
-- on PostgreSQL 15+, so no hosted database owner could apply this file. The functions now mark their
-- pack writes with set_config() at the start of their body instead (transaction-local; 0046, later in the
-- same upgrade, has the current bodies, which also take the mark off before returning).

-- use_sessions() again, with two changes: it marks its own pack writes (booking_cron.ledger_write)
-- so the pack-change trigger does not record them a second time, and a booking whose session
-- was given back (released_at set) may have one taken again, reusing its ledger row.

create or replace function public.use_sessions(p_purchase_ids uuid[], p_booking_ids uuid[])
returns table (booking_id uuid, purchase_id uuid, outcome text)
language plpgsql
security definer
set search_path = pg_catalog, public
as $$
#variable_conflict use_column
begin
  perform set_config('booking_cron.ledger_write', 'on', true);
  if coalesce(array_length(p_purchase_ids, 1), 0) <> coalesce(array_length(p_booking_ids, 1), 0) then
    raise exception 'use_sessions: % purchase ids for % booking ids',
      array_length(p_purchase_ids, 1), array_length(p_booking_ids, 1);
  end if;

  -- Lock the packs in id order: concurrent batches serialise per pack and cannot deadlock.
  -- The next statement takes its snapshot after the locks, so it sees every committed deduction.
  perform 1 from public.client_purchases cp
  where cp.id = any(p_purchase_ids)
  order by cp.id
  for update;

  return query
  with input as (
    select distinct on (t.b) t.p, t.b
    from unnest(p_purchase_ids, p_booking_ids) as t(p, b)
    order by t.b
  ),
  judged as (
    select i.b, i.p, bk.org_id, bk.client_id, bk.start_time, bk.end_time,
           coalesce(cp.sessions_used, 0) as used, cp.sessions_total as total,
           case
             when bk.id is null then 'booking_not_found'
             when bk.purchase_id is distinct from i.p then 'purchase_mismatch'
             when cp.id is null then 'not_found'
             when su.booking_id is not null then 'already_deducted'
             when cp.client_id <> bk.client_id or cp.org_id <> bk.org_id then 'purchase_mismatch'
             when cp.payment_status is distinct from 'succeeded' then 'unpaid'
             when cp.sessions_total is null or cp.sessions_total <= 0 then 'not_a_pack'
             when cp.expires_at is not null and cp.expires_at < bk.end_time then 'expired'
             else 'eligible'
           end as verdict
    from input i
    left join public.bookings bk on bk.id = i.b
    left join public.client_purchases cp on cp.id = i.p
    left join public.session_usage su on su.booking_id = i.b and su.released_at is null
  ),
  decided as (
    select j.*,
           case
             when j.verdict <> 'eligible' then j.verdict
             -- earlier sessions take a pack's last places first
             when j.used + row_number() over (
                    partition by j.p, j.verdict = 'eligible' order by j.end_time, j.b) <= j.total
               then 'deducted'
             else 'exhausted'
           end as result
    from judged j
  ),
  ledger as (
    insert into public.session_usage as su (org_id, client_id, purchase_id, booking_id, session_date, sessions, source)
    select d.org_id, d.client_id, d.p, d.b, (d.start_time at time zone 'UTC')::date, 1, 'booking'
    from decided d
    where d.result = 'deducted'
    on conflict (booking_id) where booking_id is not null do update
      set released_at = null, purchase_id = excluded.purchase_id, org_id = excluded.org_id,
          client_id = excluded.client_id, session_date = excluded.session_date, sessions = 1
      where su.released_at is not null
    returning su.booking_id, su.purchase_id
  ),
  counted as (
    update public.client_purchases cp
    set sessions_used = coalesce(cp.sessions_used, 0) + n.sessions
    from (select l.purchase_id, count(*)::int as sessions from ledger l group by l.purchase_id) n
    where cp.id = n.purchase_id
    returning cp.id
  )
  select d.b, d.p,
         case when d.result = 'deducted' and l.booking_id is null then 'already_deducted'
              else d.result end
  from decided d
  left join ledger l on l.booking_id = d.b;
end;
$$;

-- The per-booking form an API caller may use: for an `authenticated` user, only in its own orgs.
create or replace function public.use_session(p_purchase_id uuid, p_booking_id uuid)
returns text
language plpgsql
security definer
set search_path = pg_catalog, public
as $$
declare
  v_org uuid;
begin
  select coalesce((select b.org_id from public.bookings b where b.id = p_booking_id),
                  (select cp.org_id from public.client_purchases cp where cp.id = p_purchase_id))
  into v_org;
  if v_org is not null then
    perform public.booking_cron_require_member(v_org, 'this booking');
  end if;
  return (select u.outcome from public.use_sessions(array[p_purchase_id], array[p_booking_id]) u);
end;
$$;

-- The seed app's one-argument form ("Use 1 Session", the app's auto-complete): one guarded UPDATE
-- and a ledger row without a booking; for an `authenticated` user, only on its own orgs' packs.
create or replace function public.use_session(p_purchase_id uuid)
returns boolean
language plpgsql
security definer
set search_path = pg_catalog, public
as $$
declare
  v_org uuid;
begin
  perform set_config('booking_cron.ledger_write', 'on', true);
  select cp.org_id into v_org from public.client_purchases cp where cp.id = p_purchase_id;
  if not found then
    return false;
  end if;
  perform public.booking_cron_require_member(v_org, 'this pack');
  with taken as (
    update public.client_purchases cp
    set sessions_used = coalesce(cp.sessions_used, 0) + 1
    where cp.id = p_purchase_id
      and cp.sessions_total is not null
      and coalesce(cp.sessions_used, 0) < cp.sessions_total
      and (cp.expires_at is null or cp.expires_at >= now())
    returning cp.id, cp.org_id, cp.client_id
  )
  insert into public.session_usage (org_id, client_id, purchase_id, session_date, sessions, source)
  select t.org_id, t.client_id, t.id, current_date, 1, 'legacy' from taken t;
  return found;
end;
$$;
