-- Edited after release (issue 15): a function-level `set booking_cron.ledger_write` needs a superuser
-- on PostgreSQL 15+, so no hosted database owner could apply this file. The functions now mark their
-- pack writes with set_config() at the start of their body instead (transaction-local; 0046, later in the
-- same upgrade, has the current bodies, which also take the mark off before returning).

-- Giving sessions back. release_sessions() gives back exactly the listed bookings' sessions,
-- set-based and idempotent per booking (its ledger row is marked released, once); outcomes:
-- released, already_released, not_deducted (no session of that booking on that pack).
-- release_session(purchase, booking) is its per-booking form for API callers, and the seed
-- app's release_session(purchase) ("Reinstate") keeps its contract (the new sessions_used, or
-- -1 when there was nothing to give back) while landing in the ledger: it gives back a
-- cancelled booking's session first (so the tick does not give that one back again), else it
-- records a give-back without a booking.

create or replace function public.release_sessions(p_purchase_ids uuid[], p_booking_ids uuid[])
returns table (booking_id uuid, purchase_id uuid, outcome text)
language plpgsql
security definer
set search_path = pg_catalog, public
as $$
#variable_conflict use_column
begin
  perform set_config('booking_cron.ledger_write', 'on', true);
  if coalesce(array_length(p_purchase_ids, 1), 0) <> coalesce(array_length(p_booking_ids, 1), 0) then
    raise exception 'release_sessions: % purchase ids for % booking ids',
      array_length(p_purchase_ids, 1), array_length(p_booking_ids, 1);
  end if;

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
end;
$$;

create or replace function public.release_session(p_purchase_id uuid, p_booking_id uuid)
returns text
language plpgsql
security definer
set search_path = pg_catalog, public
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
set search_path = pg_catalog, public
as $$
declare
  v_org uuid;
  v_booking uuid;
  v_used int;
begin
  perform set_config('booking_cron.ledger_write', 'on', true);
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
    with given as (
      update public.client_purchases cp
      set sessions_used = cp.sessions_used - 1
      where cp.id = p_purchase_id and cp.sessions_used > 0
      returning cp.id, cp.org_id, cp.client_id
    )
    insert into public.session_usage (org_id, client_id, purchase_id, session_date, sessions, source)
    select g.org_id, g.client_id, g.id, current_date, -1, 'release' from given g;
    if not found then
      return -1;
    end if;
  end if;
  select cp.sessions_used into v_used from public.client_purchases cp where cp.id = p_purchase_id;
  return v_used;
end;
$$;

revoke execute on function public.release_sessions(uuid[], uuid[]) from public;
revoke execute on function public.release_session(uuid, uuid) from public;
revoke execute on function public.release_session(uuid) from public;
