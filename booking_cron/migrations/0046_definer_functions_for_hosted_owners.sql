-- Every booking-cron function again, as it stands today (the one place to read their bodies), with
-- two changes that let a database owner who is not a superuser install and run booking-cron
-- (Supabase's `postgres`, RDS's master user, Cloud SQL, Neon):
-- * search_path is pg_catalog, pg_temp only, and everything else is schema-qualified: nothing a role
--   can create in `public` or `extensions` (an exact-type overload of array_length, an operator)
--   can shadow what these security definer functions call. Functions are never looked up in pg_temp.
-- * The functions that write packs mark those writes for the pack-change trigger with
--   set_config('booking_cron.ledger_write', 'on', true) in their body and put the previous value
--   back before they return. A function-level `set booking_cron.ledger_write` needs a superuser
--   on PostgreSQL 15+ (or GRANT SET ON PARAMETER, which hosted databases do not give). An error
--   inside undoes the mark with the (sub)transaction that fails. The API roles cannot set the mark:
--   PostgREST runs no statement of theirs but calls to exposed functions.

create or replace function public.booking_cron_may_act(p_org_id uuid)
returns boolean
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_role text := current_setting('role', true);
  v_member boolean;
begin
  if v_role = 'anon' then
    return false;
  end if;
  if v_role is distinct from 'authenticated' then
    return true;
  end if;
  if to_regclass('public.org_members') is null or to_regprocedure('auth.uid()') is null then
    return false;
  end if;
  execute 'select exists (select 1 from public.org_members m where m.org_id = $1 and m.user_id = auth.uid())'
    into v_member using p_org_id;
  return coalesce(v_member, false);
end;
$$;

create or replace function public.booking_cron_require_member(p_org_id uuid, p_what text)
returns void
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if not public.booking_cron_may_act(p_org_id) then
    raise exception 'permission denied: % belongs to an org you are not a member of', p_what
      using errcode = 'insufficient_privilege';
  end if;
end;
$$;

create or replace function public.booking_cron_record_pack_change()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_delta int;
begin
  if current_setting('booking_cron.ledger_write', true) = 'on' then
    return null;
  end if;
  v_delta := coalesce(new.sessions_used, 0)
           - case when tg_op = 'UPDATE' then coalesce(old.sessions_used, 0) else 0 end;
  if v_delta <> 0 then
    insert into public.session_usage (org_id, client_id, purchase_id, session_date, sessions, source)
    values (new.org_id, new.client_id, new.id, current_date, v_delta,
            case when tg_op = 'INSERT' then 'opening' else 'adjustment' end);
  end if;
  return null;
end;
$$;

create or replace function public.use_sessions(p_purchase_ids uuid[], p_booking_ids uuid[])
returns table (booking_id uuid, purchase_id uuid, outcome text)
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
  v_mark text := coalesce(current_setting('booking_cron.ledger_write', true), '');
begin
  if coalesce(array_length(p_purchase_ids, 1), 0) <> coalesce(array_length(p_booking_ids, 1), 0) then
    raise exception 'use_sessions: % purchase ids for % booking ids',
      array_length(p_purchase_ids, 1), array_length(p_booking_ids, 1);
  end if;

  perform set_config('booking_cron.ledger_write', 'on', true);
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
  perform set_config('booking_cron.ledger_write', v_mark, true);
end;
$$;

create or replace function public.use_session(p_purchase_id uuid, p_booking_id uuid)
returns text
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
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

create or replace function public.use_session(p_purchase_id uuid)
returns boolean
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_org uuid;
  v_mark text := coalesce(current_setting('booking_cron.ledger_write', true), '');
  v_taken boolean;
begin
  select cp.org_id into v_org from public.client_purchases cp where cp.id = p_purchase_id;
  if not found then
    return false;
  end if;
  perform public.booking_cron_require_member(v_org, 'this pack');
  perform set_config('booking_cron.ledger_write', 'on', true);
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
  v_taken := found;
  perform set_config('booking_cron.ledger_write', v_mark, true);
  return v_taken;
end;
$$;

create or replace function public.complete_booking(p_booking_id uuid)
returns text
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_org uuid;
  v_purchase_id uuid;
begin
  select b.org_id into v_org from public.bookings b where b.id = p_booking_id;
  if not found then
    return 'not_confirmed';
  end if;
  perform public.booking_cron_require_member(v_org, 'this booking');
  update public.bookings b
  set status = 'completed', updated_at = now()
  where b.id = p_booking_id and b.status = 'confirmed'
  returning b.purchase_id into v_purchase_id;
  if not found then
    return 'not_confirmed';
  end if;
  if v_purchase_id is null then
    return 'no_pack';
  end if;
  return (select u.outcome from public.use_sessions(array[v_purchase_id], array[p_booking_id]) u);
end;
$$;

create or replace function public.release_sessions(p_purchase_ids uuid[], p_booking_ids uuid[])
returns table (booking_id uuid, purchase_id uuid, outcome text)
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
  v_mark text := coalesce(current_setting('booking_cron.ledger_write', true), '');
begin
  if coalesce(array_length(p_purchase_ids, 1), 0) <> coalesce(array_length(p_booking_ids, 1), 0) then
    raise exception 'release_sessions: % purchase ids for % booking ids',
      array_length(p_purchase_ids, 1), array_length(p_booking_ids, 1);
  end if;

  perform set_config('booking_cron.ledger_write', 'on', true);
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
  released as (
    update public.session_usage su
    set released_at = now()
    from input i
    where su.booking_id = i.b and su.purchase_id = i.p and su.released_at is null
    returning su.booking_id, su.purchase_id, su.sessions
  ),
  counted as (
    update public.client_purchases cp
    set sessions_used = coalesce(cp.sessions_used, 0) - n.sessions
    from (select r.purchase_id, sum(r.sessions)::int as sessions from released r group by r.purchase_id) n
    where cp.id = n.purchase_id
    returning cp.id
  )
  select i.b, i.p,
         case when r.booking_id is not null then 'released'
              when exists (select 1 from public.session_usage su where su.booking_id = i.b and su.purchase_id = i.p)
                then 'already_released'
              else 'not_deducted' end
  from input i
  left join released r on r.booking_id = i.b;
  perform set_config('booking_cron.ledger_write', v_mark, true);
end;
$$;

create or replace function public.release_session(p_purchase_id uuid, p_booking_id uuid)
returns text
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_org uuid;
begin
  select cp.org_id into v_org from public.client_purchases cp where cp.id = p_purchase_id;
  if not found then
    return 'not_found';
  end if;
  perform public.booking_cron_require_member(v_org, 'this pack');
  return (select r.outcome from public.release_sessions(array[p_purchase_id], array[p_booking_id]) r);
end;
$$;

create or replace function public.release_session(p_purchase_id uuid)
returns int
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_org uuid;
  v_booking uuid;
  v_used int;
  v_mark text := coalesce(current_setting('booking_cron.ledger_write', true), '');
  v_given boolean;
begin
  select cp.org_id into v_org from public.client_purchases cp where cp.id = p_purchase_id for update;
  if not found then
    return -1;
  end if;
  perform public.booking_cron_require_member(v_org, 'this pack');

  select su.booking_id into v_booking
  from public.session_usage su join public.bookings b on b.id = su.booking_id
  where su.purchase_id = p_purchase_id and su.released_at is null and b.status = 'cancelled'
  order by su.created_at, su.booking_id
  limit 1;

  if v_booking is not null then
    perform 1 from public.release_sessions(array[p_purchase_id], array[v_booking]);
  else
    perform set_config('booking_cron.ledger_write', 'on', true);
    with given as (
      update public.client_purchases cp
      set sessions_used = cp.sessions_used - 1
      where cp.id = p_purchase_id and cp.sessions_used > 0
      returning cp.id, cp.org_id, cp.client_id
    )
    insert into public.session_usage (org_id, client_id, purchase_id, session_date, sessions, source)
    select g.org_id, g.client_id, g.id, current_date, -1, 'release' from given g;
    v_given := found;
    perform set_config('booking_cron.ledger_write', v_mark, true);
    if not v_given then
      return -1;
    end if;
  end if;
  select cp.sessions_used into v_used from public.client_purchases cp where cp.id = p_purchase_id;
  return v_used;
end;
$$;

create or replace function public.booking_cron_stamp_cancelled_at()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  if new.status = 'cancelled' and new.cancelled_at is null then
    new.cancelled_at := now();
  end if;
  return new;
end;
$$;

create or replace function public.booking_cron_guard_client_status()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if not (new.status = 'cancelled' and old.status in ('pending', 'confirmed'))
     and not public.booking_cron_may_act(old.org_id) then
    raise exception 'permission denied: only the org''s trainers can change a booking from % to %', old.status, new.status
      using errcode = 'insufficient_privilege';
  end if;
  return new;
end;
$$;
