-- The audit judges only what the app's API roles cannot forge (issue 16).
--
-- * "No pack is taken past sessions_total" is about booking-cron's deductions, not about what a
--   trainer types into the app's Edit package form (which may set sessions_total below
--   sessions_used). Each deduction now records the pack's sessions_total and its sessions_used
--   after it, when it was taken; the audit checks those ledger rows, which no API role can write.
-- * A suppression's created_at and a booking's cancelled_at are when the database learned of
--   them, whoever writes them through the API: an API caller cannot backdate a STOP or a
--   cancellation to make an earlier text look like a violation (or a later one look fine).
-- * An outbox row an API role queued (through the app's insert_sms_direct, executable by anon on
--   the app's database) records that role in queued_by: such a row does not count as the booking's
--   text, so a planted row cannot silence a reminder.

alter table public.session_usage add column if not exists pack_total integer;
alter table public.session_usage add column if not exists pack_used_after bigint;

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
  ranked as (
    -- earlier sessions take a pack's last places first
    select j.*, row_number() over (partition by j.p, j.verdict = 'eligible' order by j.end_time, j.b) as place
    from judged j
  ),
  decided as (
    select r.*,
           case
             when r.verdict <> 'eligible' then r.verdict
             when r.used + r.place <= r.total then 'deducted'
             else 'exhausted'
           end as result
    from ranked r
  ),
  ledger as (
    insert into public.session_usage as su (org_id, client_id, purchase_id, booking_id, session_date, sessions, source,
                                            pack_total, pack_used_after)
    select d.org_id, d.client_id, d.p, d.b, (d.start_time at time zone 'UTC')::date, 1, 'booking', d.total, d.used + d.place
    from decided d
    where d.result = 'deducted'
    on conflict (booking_id) where booking_id is not null do update
      set released_at = null, purchase_id = excluded.purchase_id, org_id = excluded.org_id,
          client_id = excluded.client_id, session_date = excluded.session_date, sessions = 1,
          pack_total = excluded.pack_total, pack_used_after = excluded.pack_used_after
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

create or replace function booking_cron.stamp_suppression()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  if tg_op = 'INSERT' or new.phone is distinct from old.phone or new.org_id is distinct from old.org_id
     or new.created_at is distinct from old.created_at then
    new.created_at := now();
  end if;
  return new;
end;
$$;

revoke execute on function booking_cron.stamp_suppression() from public;

drop trigger if exists booking_cron_stamp_suppression on public.sms_suppression;
create trigger booking_cron_stamp_suppression
  before insert or update on public.sms_suppression
  for each row when (current_setting('role', true) in ('anon', 'authenticated'))
  execute function booking_cron.stamp_suppression();

alter table public.sms_messages add column if not exists queued_by text;

create or replace function booking_cron.stamp_queued_by()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  new.queued_by := current_setting('role', true);
  return new;
end;
$$;

revoke execute on function booking_cron.stamp_queued_by() from public;

drop trigger if exists booking_cron_stamp_queued_by on public.sms_messages;
create trigger booking_cron_stamp_queued_by
  before insert on public.sms_messages
  for each row when (current_setting('role', true) in ('anon', 'authenticated'))
  execute function booking_cron.stamp_queued_by();
