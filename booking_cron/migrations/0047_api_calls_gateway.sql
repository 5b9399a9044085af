-- The app's signed-in users call complete_booking(), use_session() and release_session() through
-- Supabase's API, and those must act with more rights than the caller has (write the ledger, move a
-- pack's sessions_used). Until now that meant security definer functions that `authenticated` may
-- execute, which Supabase's advisor warns about (lint 0029), rightly in general: any signed-up user
-- can call such a function directly.
--
-- Now the functions the API reaches are security invoker, and each records the call in
-- booking_cron.api_calls (a schema of booking-cron's own that the API does not expose). A trigger on
-- that table does the work with booking-cron's rights (the former functions, moved to the private
-- schema, which no API role may execute), after the same membership check as before. What the
-- caller may do has not changed; every such call is now also on record, with its outcome.

create schema if not exists booking_cron;
revoke all on schema booking_cron from public;

create table if not exists booking_cron.api_calls (
  id bigint generated always as identity primary key,
  called_at timestamptz not null default now(),
  caller_role text,
  caller_user text,  -- the API's JWT subject, when the call came through the API
  call text not null check (call in ('complete_booking', 'use_session', 'use_session_legacy',
                                     'release_session', 'release_session_legacy')),
  purchase_id uuid,
  booking_id uuid,
  outcome text
);
alter table booking_cron.api_calls enable row level security;

alter function public.complete_booking(uuid) set schema booking_cron;
alter function public.use_session(uuid, uuid) set schema booking_cron;
alter function public.use_session(uuid) set schema booking_cron;
alter function public.release_session(uuid, uuid) set schema booking_cron;
alter function public.release_session(uuid) set schema booking_cron;

-- The JWT subject of the API request (PostgREST's request.jwt.claims), or null; never an error.
create or replace function booking_cron.jwt_subject()
returns text
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
begin
  return nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub';
exception when others then
  return null;
end;
$$;

create or replace function booking_cron.serve_api_call()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  new.called_at := now();
  new.caller_role := current_setting('role', true);
  new.caller_user := booking_cron.jwt_subject();
  new.outcome := case new.call
    when 'complete_booking' then booking_cron.complete_booking(new.booking_id)
    when 'use_session' then booking_cron.use_session(new.purchase_id, new.booking_id)
    when 'use_session_legacy' then booking_cron.use_session(new.purchase_id)::text
    when 'release_session' then booking_cron.release_session(new.purchase_id, new.booking_id)
    when 'release_session_legacy' then booking_cron.release_session(new.purchase_id)::text
  end;
  return new;
end;
$$;

drop trigger if exists booking_cron_serve_api_call on booking_cron.api_calls;
create trigger booking_cron_serve_api_call
  before insert on booking_cron.api_calls
  for each row execute function booking_cron.serve_api_call();

create or replace function public.complete_booking(p_booking_id uuid)
returns text
language sql
security invoker
set search_path = pg_catalog, pg_temp
as $$
  insert into booking_cron.api_calls (call, booking_id) values ('complete_booking', p_booking_id)
  returning outcome
$$;

create or replace function public.use_session(p_purchase_id uuid, p_booking_id uuid)
returns text
language sql
security invoker
set search_path = pg_catalog, pg_temp
as $$
  insert into booking_cron.api_calls (call, purchase_id, booking_id) values ('use_session', p_purchase_id, p_booking_id)
  returning outcome
$$;

create or replace function public.use_session(p_purchase_id uuid)
returns boolean
language sql
security invoker
set search_path = pg_catalog, pg_temp
as $$
  insert into booking_cron.api_calls (call, purchase_id) values ('use_session_legacy', p_purchase_id)
  returning outcome::boolean
$$;

create or replace function public.release_session(p_purchase_id uuid, p_booking_id uuid)
returns text
language sql
security invoker
set search_path = pg_catalog, pg_temp
as $$
  insert into booking_cron.api_calls (call, purchase_id, booking_id)
  values ('release_session', p_purchase_id, p_booking_id)
  returning outcome
$$;

create or replace function public.release_session(p_purchase_id uuid)
returns integer
language sql
security invoker
set search_path = pg_catalog, pg_temp
as $$
  insert into booking_cron.api_calls (call, purchase_id) values ('release_session_legacy', p_purchase_id)
  returning outcome::integer
$$;

revoke execute on all functions in schema booking_cron from public;
