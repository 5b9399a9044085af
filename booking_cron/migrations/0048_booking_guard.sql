-- What was attended is deducted, whatever a client writes through the API.
--
-- The app's row-level security lets a client update any column of their own bookings, and lets
-- anyone own an org (sign-up makes the new user its owner). 0045 only stopped a client from changing
-- a booking's status other than cancelling an upcoming one, judged on the old org and never against
-- the start time. So a client could still, after attending: cancel the booking, unlink its pack, move
-- its times into the future, or move it to an org of their own (where they are a member), change it
-- there and move it back. The tick then completed or skipped it without deducting, or gave back a
-- session already taken.
--
-- Now, for API callers (`anon`, `authenticated`; the owner, service_role and the tick are not
-- affected), on every insert and update of a booking:
-- * a caller who is not a member of the booking's org, judged on the old row and the new one (a
--   client through the client app), may only cancel an upcoming booking (pending or confirmed, before
--   its start); cancelled_at is then now. Any other change to its status, org, client, pack, times or
--   cancellation time is refused;
-- * a caller who is not a member of the org may still book themselves an upcoming session (the app's
--   client booking page): their own client row, pending or confirmed;
-- * nobody puts a booking in an org they are not a member of (but for booking themselves), gives it a
--   client of another org, or a pack of another org or client; nobody moves a client to another org
--   unless a member of both;
-- * a cancellation's time (cancelled_at) is now, whoever cancels through the API: it cannot be
--   backdated (the tick's give-backs and the audit judge against it).
-- Refusals raise insufficient_privilege (HTTP 403 through the API) with a one-line reason.

create or replace function booking_cron.caller_is_client(p_client_id uuid)
returns boolean
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_own boolean;
begin
  -- the app links a client's login to its client row (clients.auth_user_id = auth.uid())
  if to_regprocedure('auth.uid()') is null or not exists (
      select 1 from pg_catalog.pg_attribute a
      where a.attrelid = 'public.clients'::regclass and a.attname = 'auth_user_id' and not a.attisdropped) then
    return false;
  end if;
  execute 'select exists (select 1 from public.clients c where c.id = $1 and c.auth_user_id = auth.uid())'
    into v_own using p_client_id;
  return coalesce(v_own, false);
end;
$$;

create or replace function booking_cron.guard_booking_write()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_member boolean := public.booking_cron_may_act(new.org_id)
                      and (tg_op = 'INSERT' or public.booking_cron_may_act(old.org_id));
begin
  if tg_op = 'UPDATE' and not v_member then
    -- a client (or anyone not a member of the booking's org before and after): cancel an upcoming
    -- booking, change nothing that decides what is deducted
    if new.org_id is distinct from old.org_id then
      raise exception 'permission denied: bookings can only be moved between orgs you are a member of'
        using errcode = 'insufficient_privilege';
    end if;
    if new.client_id is distinct from old.client_id or new.purchase_id is distinct from old.purchase_id
       or new.start_time is distinct from old.start_time or new.end_time is distinct from old.end_time then
      raise exception 'permission denied: only the org''s trainers can change a booking''s client, pack or times'
        using errcode = 'insufficient_privilege';
    end if;
    if new.status is distinct from old.status then
      if not (new.status = 'cancelled' and old.status in ('pending', 'confirmed') and old.start_time > now()) then
        raise exception 'permission denied: you can cancel a booking before it starts; only the org''s trainers can change it from % to %',
          old.status, new.status using errcode = 'insufficient_privilege';
      end if;
      new.cancelled_at := now();
    elsif new.cancelled_at is distinct from old.cancelled_at then
      raise exception 'permission denied: only the org''s trainers can change when a booking was cancelled'
        using errcode = 'insufficient_privilege';
    end if;
    return new;
  end if;

  if tg_op = 'INSERT' and not v_member then
    -- a client booking themselves (the app's client booking page): their own client row, an upcoming
    -- session, not completed or cancelled yet
    if not booking_cron.caller_is_client(new.client_id) then
      raise exception 'permission denied: bookings can only be made in an org you are a member of, or for yourself'
        using errcode = 'insufficient_privilege';
    end if;
    if new.status not in ('pending', 'confirmed') or new.start_time <= now() or new.cancelled_at is not null then
      raise exception 'permission denied: you can book yourself an upcoming session only'
        using errcode = 'insufficient_privilege';
    end if;
  end if;

  if tg_op = 'INSERT' or new.org_id is distinct from old.org_id or new.client_id is distinct from old.client_id
     or new.purchase_id is distinct from old.purchase_id then
    if not exists (select 1 from public.clients c where c.id = new.client_id and c.org_id = new.org_id) then
      raise exception 'permission denied: the booking''s client is not a client of its org'
        using errcode = 'insufficient_privilege';
    end if;
    if new.purchase_id is not null and not exists (
        select 1 from public.client_purchases cp
        where cp.id = new.purchase_id and cp.org_id = new.org_id and cp.client_id = new.client_id) then
      raise exception 'permission denied: the booking''s pack is not one of its client''s packs in its org'
        using errcode = 'insufficient_privilege';
    end if;
  end if;
  -- a cancellation's time is when the database learned of it, also for trainers: the tick gives
  -- sessions back and the audit judges texts against it
  if new.status = 'cancelled' and (tg_op = 'INSERT' or old.status is distinct from 'cancelled') then
    new.cancelled_at := now();
  elsif tg_op = 'UPDATE' and new.cancelled_at is distinct from old.cancelled_at and new.status = 'cancelled' then
    raise exception 'permission denied: a cancellation''s time is when it was made'
      using errcode = 'insufficient_privilege';
  end if;
  return new;
end;
$$;

-- The app lets a client update their own client row (and anyone one with an onboarding token). A
-- client moved to another org would make their bookings another org's client's, which the tick
-- rejects: so only the org's members may change a client's org.
create or replace function booking_cron.guard_client_write()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if new.org_id is distinct from old.org_id
     and not (public.booking_cron_may_act(old.org_id) and public.booking_cron_may_act(new.org_id)) then
    raise exception 'permission denied: only members of both orgs can move a client between them'
      using errcode = 'insufficient_privilege';
  end if;
  return new;
end;
$$;

revoke execute on function booking_cron.caller_is_client(uuid) from public;
revoke execute on function booking_cron.guard_client_write() from public;

drop trigger if exists booking_cron_guard_client_write on public.clients;
create trigger booking_cron_guard_client_write
  before update of org_id on public.clients
  for each row when (new.org_id is distinct from old.org_id and current_setting('role', true) in ('anon', 'authenticated'))
  execute function booking_cron.guard_client_write();

revoke execute on function booking_cron.guard_booking_write() from public;

drop trigger if exists booking_cron_guard_client_status on public.bookings;
drop function if exists public.booking_cron_guard_client_status();

drop trigger if exists booking_cron_guard_booking_write on public.bookings;
create trigger booking_cron_guard_booking_write
  before insert or update on public.bookings
  -- only API callers' writes reach the function: the tick's 100k completions never do
  for each row when (current_setting('role', true) in ('anon', 'authenticated'))
  execute function booking_cron.guard_booking_write();
